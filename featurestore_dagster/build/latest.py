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


class LatestLost(Exception):
    """An entity's newest row was inside the replaced window and has no row there any more:
    its latest row is some older one that only the whole table knows."""


# The text of the MERGE's ERROR action, how a LatestLost is told from other statement errors.
_LOST = "featurestore: the newest row of an entity left the window"


def update_for_window(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    latest: str,
    window_rows: str,
    window: BuildWindow,
) -> bool:
    """Bring ``latest`` (quoted) up to date after the rows of ``window`` were replaced by
    ``window_rows`` (quoted), inside the caller's transaction, in one MERGE (one scan of the
    latest table; every lake statement costs a few ms of catalog work, whatever its rows).

    Per entity, the newest of its old latest row (when outside the window) and its newest new
    row in the window is its newest row: every other old row outside the window is older
    than the old latest one.

    Returns:
        False, with nothing changed, for a global series (no entity columns): the caller
        recomputes from the whole table.

    Raises:
        LatestLost: an entity whose newest row was inside the window has no row there any
            more. The statement failed, so an enclosing transaction is aborted: the caller
            rolls it back and recomputes from the whole table.
    """
    keys = [quote_identifier(c) for c in definition.entity_columns]
    if not keys:
        return False
    ts = quote_identifier(definition.timestamp_column)
    value = quote_identifier(definition.feature_name)
    inside = window.condition(definition.timestamp_column, qualifier="l")
    same = " AND ".join(f"c.{k} IS NOT DISTINCT FROM l.{k}" for k in keys)
    try:
        conn.execute(
            f"MERGE INTO {latest} AS l USING ({latest_values_sql(definition, window_rows)}) AS c"
            f" ON ({same})"
            f" WHEN MATCHED AND (c.{ts} > l.{ts} OR ({inside}))"
            f" THEN UPDATE SET {ts} = c.{ts}, {value} = c.{value}"
            " WHEN NOT MATCHED THEN INSERT BY NAME"
            f" WHEN NOT MATCHED BY SOURCE AND ({inside}) THEN ERROR '{_LOST}'"
        )
    except duckdb.ConstraintException as error:
        if _LOST in str(error):
            raise LatestLost(definition.feature_name) from error
        raise
    return True
