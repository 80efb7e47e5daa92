"""Leakage guard: does a feature's SQL read rows later than the row it computes?

A training set joins each label time with the latest feature value at or before it; a value
computed from later rows (a ``LEAD``, a window frame reaching ``FOLLOWING`` rows, a ``LAG``
with a negative offset, a window over a whole time series or ordered backwards in time)
carries the future into the past. Found by parsing the SQL with sqlglot (DuckDB dialect),
never by regex. Pure: text in, reasons out.

Example:
    >>> lookahead_reasons("SELECT s, d, LEAD(x) OVER (PARTITION BY s ORDER BY d) AS f FROM t")
    ['LEAD(x) reads a later row']
"""

from __future__ import annotations

import functools
import re

from sqlglot import exp

from featurestore_dagster.definitions.sql import SqlError, parse_select

# Window functions that rank or navigate: their meaning comes from the ORDER BY, not a frame.
_RANKING = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile)


@functools.lru_cache(maxsize=4096)
def lookahead_reasons(sql: str, timestamp_column: str | None = None) -> tuple[str, ...]:
    """Why ``sql`` (rendered, parameters substituted) can see the future; empty when it cannot.

    Args:
        sql: one DuckDB SELECT.
        timestamp_column: the feature's event-time column; a window partitioned by it is a
            cross-section of one time (safe), one ordered by it descending runs backwards.

    Raises:
        SqlError: the SQL does not parse.
    """
    tree = parse_select(sql)
    named = _named_windows(tree)
    reasons: list[str] = []
    for node in tree.find_all(exp.Lead):
        reasons.append(f"{_short(node)} reads a later row")
    for node in tree.find_all(exp.Lag):
        offset = node.args.get("offset")
        if offset is None:
            continue
        value = _integer(offset)
        if value is None:
            reasons.append(f"{_short(node)} has an offset that is not a constant")
        elif value < 0:
            reasons.append(f"{_short(node)} has a negative offset: it reads a later row")
    for window in tree.find_all(exp.Window):
        if isinstance(window.this, exp.Identifier):  # a WINDOW w AS (...) definition
            continue
        reasons.extend(_window_reasons(window, named, timestamp_column))
    return tuple(dict.fromkeys(reasons))


def _window_reasons(
    window: exp.Window, named: dict[str, exp.Window], timestamp_column: str | None
) -> list[str]:
    base = None
    alias = window.args.get("alias")
    if alias is not None:
        base = named.get(alias.name.lower())
    partition = window.args.get("partition_by") or (base.args.get("partition_by") if base else [])
    order = window.args.get("order") or (base.args.get("order") if base else None)
    spec = window.args.get("spec") or (base.args.get("spec") if base else None)
    function = window.this
    label = _short(function)
    reasons = []
    if spec is not None:
        for side, bound in (("start_side", "start"), ("end_side", "end")):
            if str(spec.args.get(side) or "").upper() == "FOLLOWING":
                if _integer(spec.args.get(bound)) != 0:
                    reasons.append(f"{label} has a window frame reaching FOLLOWING rows")
                    break
    if timestamp_column and any(_is_column(p, timestamp_column) for p in partition or []):
        return reasons  # a cross-section of one time: every row in it is as old as the row
    keys = order.expressions if order is not None else []
    if keys and keys[0].args.get("desc") and _is_column(keys[0].this, timestamp_column):
        reasons.append(f"{label} orders by {timestamp_column} descending: earlier rows are later")
    elif not keys and not isinstance(function, _RANKING):
        reasons.append(f"{label} aggregates over every row of its partition, later ones included")
    return reasons


def _named_windows(tree: exp.Expression) -> dict[str, exp.Window]:
    named = {}
    for select in tree.find_all(exp.Select):
        for window in select.args.get("windows") or []:
            if isinstance(window.this, exp.Identifier):
                named[window.this.name.lower()] = window
    return named


def _is_column(node: exp.Expression | None, name: str | None) -> bool:
    if name is None or node is None:
        return False
    if isinstance(node, exp.Cast):
        node = node.this
    return isinstance(node, exp.Column) and node.name.lower() == name.lower()


def _integer(node: exp.Expression | None) -> int | None:
    """The value of a constant integer expression (``1``, ``-1``, ``(2)``), else None."""
    if node is None:
        return None
    if isinstance(node, exp.Paren):
        return _integer(node.this)
    if isinstance(node, exp.Neg):
        inner = _integer(node.this)
        return -inner if inner is not None else None
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(float(node.this))
        except ValueError:
            return None
    if isinstance(node, exp.Var) and str(node.this).upper() == "CURRENT ROW":
        return 0
    return None


def _short(node: exp.Expression) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 60 else text[:57] + "..."


def sql_lookahead(sql: str, timestamp_column: str | None) -> tuple[str, ...]:
    """``lookahead_reasons`` that reports SQL which does not parse as no reason (the graph
    reports the parse error itself)."""
    try:
        return lookahead_reasons(sql, timestamp_column)
    except SqlError:
        return ()


# Only a query with a window or an offset function can see later rows; anything else skips
# the parse (loading thousands of plain features must not pay for it).
_MAY_LOOK_AHEAD = re.compile(r"\b(over|lead|lag)\b", re.IGNORECASE)


def definition_lookahead(definition) -> tuple[str, ...]:
    """``lookahead_reasons`` of a SQL definition's rendered SQL (``()`` for SQL that does not
    render or parse: the graph reports that)."""
    from featurestore_dagster.definitions.sql import substitute_parameters

    code = definition.transformation.code
    if not _MAY_LOOK_AHEAD.search(code):
        return ()
    try:
        sql = substitute_parameters(code, definition.transformation.parameters)
    except SqlError:
        return ()
    return sql_lookahead(sql, definition.timestamp_column)
