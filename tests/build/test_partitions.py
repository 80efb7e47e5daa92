"""Window SQL of partitioned builds, checked against whole-table answers in DuckDB."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest

from featurestore_dagster.build.partitions import BuildWindow, latest_after_window_sql
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
    return sorted(conn.execute(query).fetchall())


@pytest.mark.parametrize("keyed", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_latest_from_the_tail_equals_latest_of_the_whole_table(seed, keyed):
    rng = random.Random(seed)
    entity_columns = ["symbol"] if keyed else []
    definition = FeatureDefinition.model_validate(base_definition(entity_columns=entity_columns))
    conn = duckdb.connect()
    symbols = ["A", "B", "C"] if keyed else [None]
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    rows = [
        (s, d, rng.random()) for s in symbols for d in days if rng.random() < 0.7
    ]  # gaps, and entities that end early
    columns = (
        "symbol VARCHAR, date DATE, close_price DOUBLE"
        if keyed
        else "date DATE, close_price DOUBLE"
    )
    conn.execute(f"CREATE TABLE live ({columns})")
    for s, d, v in rows:
        conn.execute(
            "INSERT INTO live VALUES (" + ("?, " if keyed else "") + "?, ?)",
            [*([s] if keyed else []), d, v],
        )
    conn.execute(
        f"CREATE TABLE old_latest AS {LATEST.format(keys='symbol,' if keyed else '', source='live', group='GROUP BY symbol' if keyed else 'HAVING count(*) > 0')}"
    )

    start = days[rng.randrange(5, 18)]
    window = BuildWindow(start, start + dt.timedelta(days=rng.choice((1, 3))))
    # replace the window: fewer rows (an entity may lose its latest rows) or new ones
    conn.execute(
        f"DELETE FROM live WHERE date >= DATE '{window.start}' AND date < DATE '{window.end}'"
    )
    for s in symbols:
        if rng.random() < 0.5:
            values = [*([s] if keyed else []), window.start, rng.random()]
            conn.execute("INSERT INTO live VALUES (" + ("?, " if keyed else "") + "?, ?)", values)

    expected = latest(conn, "live", keyed)
    tail = latest_after_window_sql(definition, "live", "old_latest", window)
    assert latest(conn, tail, keyed) == expected
