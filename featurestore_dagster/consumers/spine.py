"""The spine of a training set: the rows (entity keys + label time) values are looked up for.

A spine arrives as a pandas or polars DataFrame, a pyarrow Table, a SQL query or a table
name; it becomes one Arrow table here, its timestamp column is chosen and checked, its content
hashed, and only the columns the joins need (a row number, key columns, the time) are
registered in DuckDB, once. The spine's own columns never go through DuckDB, so they come back
exactly as given.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from featurestore_dagster.errors import TrainingSetError

DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"
ROW_COLUMN = "__fs_row"
SPINE_TABLE = "__fs_spine"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


@dataclass
class Spine:
    """A spine as one Arrow table plus what it was given as.

    Attributes:
        table: the rows, in the order given.
        timestamp_column: the label-time column.
        original: the object passed in (pandas/polars frames are rebuilt from it).
        kind: ``pandas``, ``polars``, ``arrow`` or ``sql``.
    """

    table: pa.Table
    timestamp_column: str
    original: Any = None
    kind: str = "arrow"
    _hash: str | None = field(default=None, repr=False)

    @property
    def row_count(self) -> int:
        return self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    def timestamp_kind(self) -> str:
        """``date``, ``timestamp`` or ``timestamptz`` of the label-time column."""
        return arrow_time_kind(self.table.schema.field(self.timestamp_column).type)

    def content_hash(self) -> str:
        """SHA-256 over the column names, types and every value in order (Arrow IPC of the
        table with its schema metadata dropped, so a pandas index note does not count)."""
        if self._hash is None:
            table = _canonical(self.table)
            digest = hashlib.sha256()
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                for batch in table.to_batches(max_chunksize=1 << 20):
                    writer.write_batch(batch)
            digest.update(sink.getvalue())
            self._hash = digest.hexdigest()
        return self._hash

    def register(self, conn: duckdb.DuckDBPyConnection, keys: list[str]) -> None:
        """Create temp table ``__fs_spine``: row number, ``keys`` and the label time."""
        wanted = [k for k in dict.fromkeys([*keys, self.timestamp_column])]
        narrow = self.table.select(wanted)
        narrow = narrow.add_column(0, ROW_COLUMN, pa.array(np.arange(self.row_count)))
        view = f"__fs_spine_arrow_{id(narrow)}"
        conn.register(view, narrow)
        try:
            # A real table, not the Arrow view: with no row estimate for a view DuckDB turns
            # an ASOF join into a nested loop (measured: 100x slower at 100k rows).
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {SPINE_TABLE} AS SELECT * FROM {view}")
        finally:
            conn.unregister(view)


def _canonical(table: pa.Table) -> pa.Table:
    """The same values with one physical layout: one chunk, plain string/binary types (polars
    hands out large or view strings where pandas gives plain ones), no schema metadata."""
    fields = []
    for item in table.schema:
        kind = item.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
            kind = pa.binary()
        fields.append(pa.field(item.name, kind))
    schema = pa.schema(fields)
    return table.replace_schema_metadata(None).cast(schema).combine_chunks()


def load_spine(
    spine: Any,
    conn: duckdb.DuckDBPyConnection | None,
    timestamp_column: str | None,
) -> Spine:
    """Turn what the caller passed into a ``Spine`` (its timestamp column chosen and checked).

    Args:
        spine: pandas/polars DataFrame, pyarrow Table or RecordBatch, a SQL query or a table
            name (read on ``conn``).
        conn: the lake connection, for SQL spines.
        timestamp_column: the label-time column; default ``event_timestamp``, else the only
            date/timestamp column.

    Raises:
        TrainingSetError: an unsupported spine, an empty one, a query that fails, or a
            timestamp column that is missing, ambiguous or not a date/timestamp.
    """
    table, kind = _as_arrow(spine, conn)
    if table.num_rows == 0:
        raise TrainingSetError("the spine is empty: a training set needs at least one row")
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TrainingSetError(f"the spine has repeated column(s): {', '.join(duplicated)}")
    reserved = [n for n in names if n.startswith("__fs_")]
    if reserved:
        raise TrainingSetError(
            f"spine column(s) {', '.join(reserved)}: the __fs_ prefix is reserved"
        )
    column = _timestamp_column(table, timestamp_column)
    return Spine(table=table, timestamp_column=column, original=spine, kind=kind)


def _as_arrow(spine: Any, conn: duckdb.DuckDBPyConnection | None) -> tuple[pa.Table, str]:
    if isinstance(spine, pa.Table):
        return spine, "arrow"
    if isinstance(spine, pa.RecordBatch):
        return pa.Table.from_batches([spine]), "arrow"
    module = type(spine).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if not isinstance(spine, pd.DataFrame):
            raise TrainingSetError(
                f"a spine must be a DataFrame, got pandas {type(spine).__name__}"
            )
        try:
            return pa.Table.from_pandas(spine, preserve_index=False), "pandas"
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise TrainingSetError(f"the pandas spine cannot be converted: {error}") from None
    if module == "polars":
        if type(spine).__name__ == "LazyFrame":
            spine = spine.collect()
        return spine.to_arrow(), "polars"
    if isinstance(spine, str):
        if conn is None:
            raise TrainingSetError("a SQL spine needs a lake connection")
        text = spine.strip()
        query = f"SELECT * FROM {text}" if _TABLE_NAME.match(text) else text
        try:
            return conn.execute(query).to_arrow_table(), "sql"
        except duckdb.Error as error:
            what = "table" if _TABLE_NAME.match(text) else "query"
            first = str(error).strip().splitlines()[0]
            raise TrainingSetError(
                f"the spine {what} {text[:80]!r} cannot be read: {first}"
            ) from None
    raise TrainingSetError(
        "a spine must be a pandas or polars DataFrame, a pyarrow Table, a SQL query or a table"
        f" name, got {type(spine).__name__}"
    )


def arrow_time_kind(arrow_type: pa.DataType) -> str | None:
    """``date``, ``timestamp`` (naive), ``timestamptz`` or None (not a time)."""
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    return None


def _timestamp_column(table: pa.Table, asked: str | None) -> str:
    names = table.column_names
    times = [n for n in names if arrow_time_kind(table.schema.field(n).type)]
    if asked is None:
        if DEFAULT_TIMESTAMP_COLUMN in names:
            asked = DEFAULT_TIMESTAMP_COLUMN
        elif len(times) == 1:
            asked = times[0]
        else:
            found = ", ".join(times) or "none"
            raise TrainingSetError(
                "say which spine column holds the label time (timestamp_column=...): there is"
                f" no '{DEFAULT_TIMESTAMP_COLUMN}' column and the date/timestamp columns are:"
                f" {found}"
            )
    if asked not in names:
        raise TrainingSetError(
            f"the spine has no timestamp column '{asked}' (columns: {', '.join(names)})"
        )
    arrow_type = table.schema.field(asked).type
    if arrow_time_kind(arrow_type) is None:
        raise TrainingSetError(
            f"spine column '{asked}' is {arrow_type}, not a date or timestamp: convert it"
            " (for example pandas.to_datetime) before asking for a training set"
        )
    return asked
