"""A partition run's rows into the live table, inside the caller's lake transaction.

Only the window's rows are swapped (DELETE of the window, INSERT of the new rows in time
order), unless the window holds every row of the table (a backfill of the whole range): then
the caller replaces the table, because DuckLake's DELETE visits every row it removes (1-2 s
at 2.6M rows once the file carries earlier deletes) where a DROP costs milliseconds.
"""

from __future__ import annotations

import duckdb

from featurestore_dagster.build.partitions import BuildWindow, in_time_order
from featurestore_dagster.definitions.models import FeatureDefinition


def holds_every_row(
    conn: duckdb.DuckDBPyConnection, definition: FeatureDefinition, live: str, window: BuildWindow
) -> bool:
    """Whether every row of ``live`` (quoted) lies in ``window``. Only a window that starts at
    the first partition can (else the table is not even read: a partition run pays nothing).
    """
    partitions = definition.partitions
    if partitions is None or window.start > partitions.start:
        return False
    inside = window.condition(definition.timestamp_column)
    outside = conn.execute(f"SELECT count(*) FROM {live} WHERE NOT ({inside})").fetchone()[0]
    return outside == 0


def swap_window(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    live: str,
    window_rows: str,
    window: BuildWindow,
) -> None:
    """Replace the rows of ``window`` in ``live`` by ``window_rows`` (both quoted)."""
    conn.execute(f"DELETE FROM {live} WHERE {window.condition(definition.timestamp_column)}")
    rows = in_time_order(definition, f"SELECT * FROM {window_rows}")
    conn.execute(f"INSERT INTO {live} BY NAME {rows}")
