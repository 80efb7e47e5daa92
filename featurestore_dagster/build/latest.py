"""The latest-value table of a feature (``_latest.<feature>``): one row per entity, the
newest timestamp and its value; online lookups read only it.

A publish replaces it inside the publish transaction: from the whole new table, or, after a
partition run replaced one window's rows, from the window's new rows alone
(``update_for_window``), which reads the small latest table instead of the whole feature.
"""

from __future__ import annotations

import duckdb

from featurestore_dagster.build.partitions import BuildWindow
from featurestore_dagster.definitions.models import LATEST_SCHEMA, FeatureDefinition
from featurestore_dagster.definitions.sql import quote_identifier


def latest_table(definition: FeatureDefinition) -> str:
    """One row per entity: the newest timestamp and its value (online lookups read it)."""
    return f"{LATEST_SCHEMA}.{definition.feature_name}"


def latest_values_sql(definition: FeatureDefinition, source: str) -> str:
    """SELECT the newest row per entity of ``source`` (a global series: one row).

    ``arg_max_null`` keeps the value of the newest row even when it is NULL; the unique_key
    check guarantees one row per (entity, timestamp).
    """
    keys = [quote_identifier(c) for c in definition.entity_columns]
    ts = quote_identifier(definition.timestamp_column)
    value = quote_identifier(definition.feature_name)
    columns = ", ".join([*keys, f"max({ts}) AS {ts}", f"arg_max_null({value}, {ts}) AS {value}"])
    if keys:
        return f"SELECT {columns} FROM {source} GROUP BY {', '.join(keys)}"
    return f"SELECT {columns} FROM {source} HAVING count(*) > 0"


def update_for_window(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    latest: str,
    window_rows: str,
    window: BuildWindow,
) -> bool:
    """Bring ``latest`` (quoted) up to date after the rows of ``window`` were replaced by
    ``window_rows`` (quoted), inside the caller's transaction. False, with nothing changed,
    when the window's rows alone cannot tell: a global series, or an entity whose newest row
    was inside the window and has no row there any more (its latest is some older row that
    only the whole table knows), so the caller recomputes from the whole table.

    Per entity, the newest of its old latest row (when outside the window) and its newest new
    row in the window is its newest row: every other old row outside the window is older
    than the old latest one.
    """
    keys = [quote_identifier(c) for c in definition.entity_columns]
    if not keys:
        return False
    ts = quote_identifier(definition.timestamp_column)
    inside = window.condition(definition.timestamp_column)  # unqualified: the latest table's
    newest = f"({latest_values_sql(definition, window_rows)})"
    same = " AND ".join(f"c.{k} IS NOT DISTINCT FROM l.{k}" for k in keys)
    lost = conn.execute(
        f"SELECT count(*) FROM {latest} AS l WHERE ({inside})"
        f" AND NOT EXISTS (SELECT 1 FROM {newest} AS c WHERE {same})"
    ).fetchone()[0]
    if lost:
        return False
    conn.execute(
        f"DELETE FROM {latest} AS l WHERE (({inside})"
        f" AND EXISTS (SELECT 1 FROM {newest} AS c WHERE {same}))"
        f" OR EXISTS (SELECT 1 FROM {newest} AS c WHERE {same} AND c.{ts} > l.{ts})"
    )
    conn.execute(
        f"INSERT INTO {latest} BY NAME SELECT * FROM {newest} AS c"
        f" WHERE NOT EXISTS (SELECT 1 FROM {latest} AS l WHERE {same})"
    )
    return True
