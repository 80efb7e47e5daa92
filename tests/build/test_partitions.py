"""Window SQL of partitioned builds, checked against whole-table answers in DuckDB."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest

from featurestore_dagster.build.latest import LatestLost, latest_values_sql, update_for_window
from featurestore_dagster.build.partitions import BuildWindow
from featurestore_dagster.definitions.models import FeatureDefinition
from tests.conftest import base_definition

LATEST = (
    "SELECT {keys} max(date) AS date, arg_max_null(close_price, date) AS close_price"
    " FROM {source} {group}"
)


def latest(conn, source: str, keyed: bool) -> list[tuple]:
    query = LATEST.format(
        keys="symbol," if keyed else "",
        source=source,
        group="GROUP BY symbol" if keyed else "HAVING count(*) > 0",
    )
    return conn.execute(f"{query} ORDER BY ALL").fetchall()


@pytest.mark.parametrize("window_days", [1, 3])
@pytest.mark.parametrize("seed", range(12))
def test_latest_updated_from_the_window_equals_latest_of_the_whole_table(seed, window_days):
    rng = random.Random(seed)
    definition = FeatureDefinition.model_validate(base_definition())
    conn = duckdb.connect()
    symbols = ["A", "B", "C", "D", None]  # a NULL key is an entity too
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    rows = [(s, d, rng.random()) for s in symbols for d in days if rng.random() < 0.7]
    conn.execute("CREATE TABLE live (symbol VARCHAR, date DATE, close_price DOUBLE)")
    conn.executemany("INSERT INTO live VALUES (?, ?, ?)", rows)
    conn.execute(f"CREATE TABLE stored AS {latest_values_sql(definition, 'live')}")
    before = latest(conn, "stored", True)

    # half the time the window holds the newest day, where the latest rows are
    start = days[-window_days] if seed % 2 else days[rng.randrange(3, 20 - window_days)]
    window = BuildWindow(start, start + dt.timedelta(days=window_days))
    inside = f"date >= DATE '{window.start}' AND date < DATE '{window.end}'"
    # the window's new rows: some entities lose theirs, some get new ones (E is new)
    conn.execute(f"DELETE FROM live WHERE {inside}")
    conn.execute("CREATE TABLE window_rows (symbol VARCHAR, date DATE, close_price DOUBLE)")
    for s in [*symbols, "E"]:
        for offset in range(window_days):
            if rng.random() < 0.75:
                day = window.start + dt.timedelta(days=offset)
                conn.execute("INSERT INTO window_rows VALUES (?, ?, ?)", [s, day, rng.random()])
    conn.execute("INSERT INTO live SELECT * FROM window_rows")

    try:
        assert update_for_window(conn, definition, "stored", "window_rows", window)
    except LatestLost:  # only when an entity's latest row was in the window and is gone
        assert latest(conn, "stored", True) == before  # the failed statement changed nothing
        lost = conn.execute(
            f"SELECT count(*) FROM stored AS l WHERE {inside} AND NOT EXISTS"
            " (SELECT 1 FROM window_rows AS w WHERE w.symbol IS NOT DISTINCT FROM l.symbol)"
        ).fetchone()[0]
        assert lost > 0
    else:
        assert latest(conn, "stored", True) == latest(conn, "live", True)


def test_latest_of_a_global_series_is_left_to_a_whole_table_recompute():
    definition = FeatureDefinition.model_validate(base_definition(entity_columns=[]))
    conn = duckdb.connect()
    conn.execute("CREATE TABLE stored AS SELECT DATE '2024-01-01' AS date, 1.0 AS close_price")
    conn.execute("CREATE TABLE window_rows AS SELECT * FROM stored")
    window = BuildWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert not update_for_window(conn, definition, "stored", "window_rows", window)
