"""Proving from the SQL alone that a feature's key is unique, so its audit can skip that scan.

The implicit ``unique_key`` check (one row per key, no NULL key) is most of an audit on large
tables: a distinct count over every key. It is redundant exactly when the transformation cannot
produce two rows with one key: a projection or window over a single upstream feature whose own
key was already checked unique and non-NULL when it was published, with that key passed through
unchanged. ``unique_key_proof`` decides this on the sqlglot tree and answers None whenever it
is not sure; the check then scans as usual. What it refuses, and why each can duplicate keys:

- joins of any kind (also comma, LATERAL, ASOF, POSITIONAL), UNION / INTERSECT / EXCEPT, CTEs
  and subqueries (a second source of rows, or one whose shape is not analysed here);
- UNNEST, EXPLODE and every function sqlglot does not know (a macro such as
  ``generate_subscripts`` or a user macro can return several rows per input row);
- GROUP BY and aggregates outside a window (rows are no longer the upstream's rows);
- PIVOT / UNPIVOT, time travel and anything else attached to the table reference;
- column aliases on the table (``AS t(a, b, c)`` renames columns by position);
- a key column that is not a bare column of the upstream's key (an expression such as
  ``date_trunc('month', date)`` maps several keys to one), a qualified name that is not the
  upstream table (it could be a struct field), ``*``, or an upstream key column left out
  (a global series read from a per-symbol feature);
- python transformations, sources (their uniqueness was never checked) and more than one
  upstream.

Filters (WHERE, QUALIFY, LIMIT, DISTINCT) only remove rows and are accepted; any other clause
of the SELECT is refused, so a clause sqlglot learns later is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from featurestore_dagster.definitions.models import FeatureDefinition, TransformationType
from featurestore_dagster.definitions.sql import SqlError, parse_select

# Nodes whose presence anywhere in the query can multiply rows (or hides a query shape).
_REFUSED = (
    exp.Join,
    exp.Lateral,
    exp.Unnest,
    exp.Explode,
    exp.Posexplode,
    exp.SetOperation,
    exp.With,
    exp.CTE,
    exp.Subquery,
    exp.Group,
    exp.Pivot,
    exp.Anonymous,
    exp.TableFromRows,
    exp.Values,
)
# What the SELECT may carry besides its list: filters, ordering, named windows. Anything else
# (GROUP BY, HAVING, joins, SAMPLE, a WITH clause, clauses of a later sqlglot) is refused.
_SELECT_ARGS = {
    "expressions", "from_", "from", "where", "qualify", "order", "limit", "offset",
    "distinct", "windows",
}  # fmt: skip
# Everything a plain ``schema.table [AS alias]`` reference may carry.
_TABLE_ARGS = {"this", "db", "catalog", "alias"}


@dataclass(frozen=True)
class UniqueKeyProof:
    """Why the key of a feature's table is unique without looking at its rows."""

    upstream: str
    reason: str


def unique_key_proof(
    definition: FeatureDefinition, upstreams: dict[str, FeatureDefinition], sql: str
) -> UniqueKeyProof | None:
    """A proof that ``sql`` (the rendered transformation) keeps its upstream's unique key.

    Args:
        definition: the feature being built.
        upstreams: its upstream features by name (their key columns are read).
        sql: the transformation with parameters substituted.

    Returns:
        The proof, or None when the query could duplicate keys (or this cannot tell).

    Example:
        >>> unique_key_proof(sma_20, {"close": close},
        ...     "SELECT symbol, date, avg(close) OVER w AS sma_20 FROM features.close").upstream
        'close'
    """
    if definition.transformation.transformation_type != TransformationType.SQL:
        return None
    if len(definition.upstream_features) != 1 or definition.sources:
        return None
    upstream = upstreams.get(definition.upstream_features[0])
    if upstream is None:
        return None
    try:
        tree = parse_select(sql)
    except SqlError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    if any(value for key, value in tree.args.items() if key not in _SELECT_ARGS):
        return None
    if any(tree.find(node) is not None for node in _REFUSED):
        return None
    if len(list(tree.find_all(exp.Select))) != 1:
        return None
    for star in tree.find_all(exp.Star):  # count(*) is fine; * and t.* are not analysed
        if not isinstance(star.parent, exp.Count):
            return None
    for aggregate in tree.find_all(exp.AggFunc):
        if not isinstance(aggregate.parent, exp.Window) or aggregate.parent.this is not aggregate:
            return None
    table = _single_table(tree, upstream)
    if table is None:
        return None
    names = {n.lower() for n in (table.alias, table.name) if n}
    if table.db:
        names.add(f"{table.db}.{table.name}".lower())
    mapping = _key_mapping(tree, definition, names)
    wanted = [c.lower() for c in upstream.key_columns]
    if mapping is None or sorted(mapping.values()) != sorted(wanted):
        return None
    pairs = ", ".join(
        f"{source} AS {target}" if source != target else target
        for target, source in mapping.items()
    )
    return UniqueKeyProof(
        upstream.feature_name,
        f"one row per input row of features '{upstream.feature_name}' (whose key was checked"
        f" unique at its publish), its key passed through unchanged ({pairs}); no join, set"
        " operation, UNNEST, GROUP BY or unknown function",
    )


def _single_table(tree: exp.Select, upstream: FeatureDefinition) -> exp.Table | None:
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    if len(list(tree.find_all(exp.Table))) != 1:
        return None
    table = source.this
    if any(value for key, value in table.args.items() if key not in _TABLE_ARGS):
        return None
    if isinstance(table.this, exp.Func) or not table.name:
        return None
    alias = table.args.get("alias")
    if alias is not None and alias.columns:  # t(a, b, c) renames columns by position
        return None
    schema, _, name = upstream.table_name.lower().rpartition(".")
    if table.name.lower() != name or (table.db or "main").lower() != schema:
        return None
    return table


def _key_mapping(
    tree: exp.Select, definition: FeatureDefinition, table_names: set[str]
) -> dict[str, str] | None:
    """Output key column -> the upstream column it is a bare copy of (lower case), or None."""
    outputs: dict[str, exp.Expression] = {}
    for projection in tree.expressions:
        name = projection.alias_or_name.lower()
        if name in outputs:
            return None
        outputs[name] = projection.this if isinstance(projection, exp.Alias) else projection
    mapping: dict[str, str] = {}
    for key in definition.key_columns:
        expression = outputs.get(key.lower())
        if not isinstance(expression, exp.Column) or not isinstance(
            expression.this, exp.Identifier
        ):
            return None
        qualifier = ".".join(p.name for p in expression.parts[:-1]).lower()
        if qualifier and qualifier not in table_names:
            return None
        mapping[key.lower()] = expression.name.lower()
    if len(set(mapping.values())) != len(mapping):
        return None
    return mapping
