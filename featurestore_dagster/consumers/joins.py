"""Point-in-time joins in DuckDB: one ``ASOF LEFT JOIN`` per feature over the spine.

For each spine row and feature, the value whose timestamp is the latest at or before the
spine's time, for the same entity keys (a feature keyed by fewer columns, such as a global
series keyed by time alone, joins on the keys it has); NULL when there is none or it is older
than the feature's TTL. Functions take a DuckDB connection and resolved table expressions
(``"features"."x"`` or ``"features"."x" AT (VERSION => 7)``), so they do not care where the
tables come from.

Times are compared as what they mean: a DATE is midnight, a TIMESTAMP without time zone is
UTC, a TIMESTAMP WITH TIME ZONE is converted to UTC, whatever the session's time zone.

Published feature tables are unique on (entity columns, timestamp): the implicit blocking
``unique_key`` check refuses anything else, which is what makes ASOF's pick well defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from featurestore_dagster.consumers.spine import ROW_COLUMN, SPINE_TABLE, Spine
from featurestore_dagster.definitions.sql import quote_identifier as q
from featurestore_dagster.errors import TrainingSetError

_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_NUMERIC = _INTEGERS | {"FLOAT", "DOUBLE", "BOOLEAN"}


@dataclass(frozen=True)
class FeatureRead:
    """One feature column to look up.

    Attributes:
        feature_name: the feature (for messages).
        column: the output column's name.
        table: SQL table expression to read (quoted, possibly ``AT (VERSION => n)``).
        value_column: the feature's value column in that table.
        entity_columns: the feature's key columns (empty: a global series).
        timestamp_column: the feature's event-time column.
        ttl_seconds: values older than this are NULL (None: no limit).
    """

    feature_name: str
    column: str
    table: str
    value_column: str
    entity_columns: tuple[str, ...]
    timestamp_column: str
    ttl_seconds: float | None = None


def time_kind(duckdb_type: str) -> str | None:
    """``date``, ``timestamp``, ``timestamptz`` or None for a DuckDB type name."""
    text = duckdb_type.upper()
    if text == "DATE":
        return "date"
    if text in {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}:
        return "timestamptz"
    if text.startswith("TIMESTAMP"):
        return "timestamp"
    return None


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of a table expression (raises ``duckdb.Error``)."""
    rows = conn.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
    return {row[0]: row[1] for row in rows}


def describe_tables(
    conn: duckdb.DuckDBPyConnection, tables: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Column types of several table expressions, bound in one statement (one catalog read
    instead of one per table: ~15 ms each on a lake). Empty when one of them cannot be read:
    ``table_columns`` then describes each, to say which."""
    tables = list(dict.fromkeys(tables))
    if not tables:
        return {}
    aliases = [f"__fs_d{index}" for index in range(len(tables))]
    sources = ", ".join(
        f"(SELECT * FROM {table}) {alias}" for table, alias in zip(tables, aliases, strict=True)
    )
    try:
        types = conn.sql(f"SELECT {', '.join(aliases)} FROM {sources}").types
    except duckdb.Error:
        return {}
    return {
        table: {name: str(kind) for name, kind in row.children}
        for table, row in zip(tables, types, strict=True)
    }


def type_family(duckdb_type: str) -> str:
    """Types that compare as equal keys: integers, strings, numbers, times, else the type."""
    text = duckdb_type.upper()
    if text in _INTEGERS:
        return "integer"
    if text.startswith("VARCHAR") or text == "STRING":
        return "string"
    if text.startswith("DECIMAL") or text in {"FLOAT", "DOUBLE"}:
        return "number"
    return time_kind(text) or text


@dataclass(frozen=True)
class _Plan:
    read: FeatureRead
    feature_kind: str
    value_type: str


def plan_reads(
    conn: duckdb.DuckDBPyConnection,
    spine_types: dict[str, str],
    spine_time: str,
    reads: Sequence[FeatureRead],
    columns: dict[str, dict[str, str]] | None = None,
) -> list[_Plan]:
    """Check every read against its table and the spine before anything runs.

    ``columns`` holds already-described tables (table expression -> column types).

    Raises:
        TrainingSetError: every problem found, together (a key column the spine lacks or
            holds with another type, a table without the declared columns).
    """
    problems: list[str] = []
    plans: list[_Plan] = []
    columns = dict(columns or {})
    columns.update(describe_tables(conn, [r.table for r in reads if r.table not in columns]))
    for read in reads:
        where = f"feature '{read.feature_name}'"
        if read.table not in columns:
            try:
                columns[read.table] = table_columns(conn, read.table)
            except duckdb.Error as error:
                first = str(error).strip().splitlines()[0]
                problems.append(f"{where}: its table cannot be read ({first}); materialize it")
                continue
        table = columns[read.table]
        missing = [
            c
            for c in (*read.entity_columns, read.timestamp_column, read.value_column)
            if c not in table
        ]
        if missing:
            problems.append(f"{where}: its table has no column(s) {', '.join(missing)}")
            continue
        for key in read.entity_columns:
            if key not in spine_types:
                problems.append(f"{where}: the spine has no key column '{key}'")
            elif type_family(spine_types[key]) != type_family(table[key]):
                problems.append(
                    f"{where}: spine column '{key}' is {spine_types[key]} but the feature's"
                    f" key is {table[key]}"
                )
        kind = time_kind(table[read.timestamp_column])
        if kind is None:
            problems.append(
                f"{where}: its timestamp column '{read.timestamp_column}' is"
                f" {table[read.timestamp_column]}, not a date or timestamp"
            )
            continue
        plans.append(_Plan(read, kind, table[read.value_column]))
    if problems:
        body = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise TrainingSetError(f"training set refused, nothing computed:\n{body}")
    return plans


def _comparable(spine_kind: str, feature_kind: str, spine_expr: str, feature_expr: str):
    """Both time expressions rewritten so DuckDB compares the instants they mean."""
    kinds = {spine_kind, feature_kind}
    if len(kinds) == 1 or kinds == {"date", "timestamp"}:
        return spine_expr, feature_expr  # DuckDB casts a DATE to its midnight

    def utc(kind: str, expr: str) -> str:
        if kind == "timestamptz":
            return f"timezone('UTC', {expr})"
        if kind == "date":
            return f"CAST({expr} AS TIMESTAMP)"
        return expr

    return utc(spine_kind, spine_expr), utc(feature_kind, feature_expr)


def asof_query(spine_kind: str, spine_time: str, plans: Sequence[_Plan]) -> str:
    """The chained ``ASOF LEFT JOIN`` query: row number + one column per read, in no
    particular order (``in_spine_order`` restores it: cheaper than an ORDER BY in DuckDB).

    Example:
        ``SELECT s.__fs_row, CASE WHEN f0.__fs_t >= s."date" - to_microseconds(...) THEN
        f0."v" END AS "v" FROM __fs_spine s ASOF LEFT JOIN (SELECT ...) f0 ON
        s."symbol" = f0."symbol" AND s."date" >= f0.__fs_t ...``
    """
    selects = [f"s.{ROW_COLUMN}"]
    joins = []
    for index, plan in enumerate(plans):
        read = plan.read
        alias = f"f{index}"
        spine_t, feature_t = _comparable(
            spine_kind, plan.feature_kind, f"s.{q(spine_time)}", q(read.timestamp_column)
        )
        keys = ", ".join(q(k) for k in read.entity_columns)
        inner = (
            f"SELECT {keys + ', ' if keys else ''}{feature_t} AS __fs_t,"
            f" {q(read.value_column)} AS __fs_v FROM {read.table}"
        )
        conditions = [f"s.{q(k)} = {alias}.{q(k)}" for k in read.entity_columns]
        conditions.append(f"{spine_t} >= {alias}.__fs_t")
        joins.append(f"ASOF LEFT JOIN ({inner}) {alias} ON {' AND '.join(conditions)}")
        value = f"{alias}.__fs_v"
        if read.ttl_seconds is not None:
            if spine_kind == plan.feature_kind == "date":
                # Whole days: a DATE minus an integer stays a DATE (no cast per row); a value
                # dated d is fresh while midnight(d) >= midnight(t) - ttl, i.e. d >= t - floor.
                cutoff = f"{spine_t} - {int(read.ttl_seconds // 86400)}"
            else:
                micros = int(round(read.ttl_seconds * 1_000_000))
                cutoff = f"{spine_t} - to_microseconds({micros})"
            value = f"CASE WHEN {alias}.__fs_t >= {cutoff} THEN {value} END"
        selects.append(f"{value} AS {q(read.column)}")
    return f"SELECT {', '.join(selects)} FROM {SPINE_TABLE} s {' '.join(joins)}"


def in_spine_order(result: pa.Table) -> pa.Table:
    """``result`` reordered by its row-number column, which is dropped.

    The row numbers are a permutation of 0..n-1 (LEFT joins on unique keys keep every spine
    row once), so the order is one scatter and one ``take``: no sort.
    """
    rows = result.column(ROW_COLUMN).to_numpy()
    result = result.drop_columns([ROW_COLUMN])
    if rows.size and bool(np.all(rows[1:] > rows[:-1])):
        return result  # already in spine order
    position = np.empty_like(rows)
    position[rows] = np.arange(rows.size, dtype=rows.dtype)
    return result.take(position)


def spine_types(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column -> DuckDB type of the registered spine."""
    return table_columns(conn, SPINE_TABLE)


def point_in_time_values(
    conn: duckdb.DuckDBPyConnection,
    spine: Spine,
    reads: Sequence[FeatureRead],
    columns: dict[str, dict[str, str]] | None = None,
) -> pa.Table:
    """One column per read, one row per spine row, in spine order.

    Registers the spine (key columns and time only) once, then runs one query with one
    ``ASOF LEFT JOIN`` per read.

    Raises:
        TrainingSetError: see ``plan_reads``.
    """
    keys = sorted({k for r in reads for k in r.entity_columns})
    missing = [k for k in keys if k not in spine.columns]
    if missing:
        needed = {k: [r.feature_name for r in reads if k in r.entity_columns] for k in missing}
        detail = "; ".join(f"'{k}' (for {', '.join(v)})" for k, v in needed.items())
        raise TrainingSetError(
            f"the spine is missing key column(s) {detail}; columns: {', '.join(spine.columns)}"
        )
    spine.register(conn, keys)
    try:
        types = spine_types(conn)
        plans = plan_reads(conn, types, spine.timestamp_column, reads, columns)
        query = asof_query(spine.timestamp_kind(), spine.timestamp_column, plans)
        result = conn.execute(query).to_arrow_table()
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {SPINE_TABLE}")
    if result.num_rows != spine.row_count:  # the joins are LEFT and keys unique: never
        raise AssertionError("a point-in-time join changed the number of spine rows")
    return in_spine_order(result)


def correlations(
    conn: duckdb.DuckDBPyConnection, table: pa.Table, label: str, columns: Sequence[str]
) -> dict[str, float | None]:
    """Pearson correlation of each numeric column with ``label``, computed in DuckDB over the
    rows where both are present (None where undefined: constant, too few rows, not numeric)."""
    view = f"__fs_corr_{id(table)}"
    conn.register(view, table.select([label, *columns]))
    try:
        types = table_columns(conn, view)
        numeric = [c for c in columns if _numeric(types[c])]
        if not numeric:
            return dict.fromkeys(columns)
        terms = ", ".join(
            f"corr(CAST({q(label)} AS DOUBLE), CAST({q(c)} AS DOUBLE))" for c in numeric
        )
        row = conn.execute(f"SELECT {terms} FROM {view}").fetchone()
    finally:
        conn.unregister(view)
    found = dict.fromkeys(columns)
    for column, value in zip(numeric, row, strict=True):
        if value is not None and value == value and -1.0 - 1e-9 <= value <= 1.0 + 1e-9:
            found[column] = max(-1.0, min(1.0, float(value)))
    return found


def _numeric(duckdb_type: str) -> bool:
    text = duckdb_type.upper()
    return text in _NUMERIC or text.startswith("DECIMAL")
