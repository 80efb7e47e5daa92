"""Partition runs on both lake catalogs: a window's rows, the latest values (one MERGE, and the
whole-table recompute when an entity's newest row left the window) and a whole-range run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.build.test_publish import seed_prices
from tests.conftest import open_test_lake
from tests.orchestration.test_partitions import (
    PRICE_DAYS,
    file_order_dates,
    latest_matches_the_table,
    materialize,
    partitioned_project,
    table,
)

runner = CliRunner()


def test_partition_runs_on_both_catalogs(definitions_folder, lake_env):
    partitioned_project(definitions_folder)
    seed_prices(lake_env, [(d, 10.0 + d) for d in range(PRICE_DAYS, 0, -1)])
    assert materialize(lake_env)[0].exit_code == 0
    seed_prices(lake_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS + 1)])
    result, builds = materialize(lake_env, "smooth", "--partition", "2024-01-11")
    assert result.exit_code == 0, result.output
    assert [(b["feature_name"], b["rows"]) for b in builds] == [("close_price", 2), ("smooth", 2)]
    assert table(lake_env, "close_price")[("AAA", "2024-01-11")] == 110.0
    assert [v for *_, v in latest_matches_the_table(lake_env, "close_price")] == [110.0] * 2

    # the newest day loses its rows: its latest values come from the whole table again
    seed_prices(lake_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS)])
    assert materialize(lake_env, "close_price", "--partition", "2024-01-11")[0].exit_code == 0
    latest = latest_matches_the_table(lake_env, "close_price")
    assert [(str(d), v) for _, d, v in latest] == [("2024-01-10", 19.0)] * 2

    # the whole range: every row replaced, stored in time order
    result, _ = materialize(lake_env, "close_price", "--partition-range", "2024-01-02...2024-01-11")
    assert result.exit_code == 0, result.output
    assert len(table(lake_env, "close_price")) == 2 * (PRICE_DAYS - 1)
    dates = file_order_dates(lake_env, "close_price")
    assert dates == sorted(dates)
    assert [v for *_, v in latest_matches_the_table(lake_env, "close_price")] == [109.0] * 2


def live_files(env, table: str) -> int:
    conn = open_test_lake(env, read_only=True)
    try:
        schema, name = table.split(".")
        query = f"SELECT count(*) FROM ducklake_list_files('featurestore', '{name}', schema => '{schema}')"
        return conn.execute(query).fetchone()[0]
    finally:
        conn.close()


def test_gc_merges_the_small_files_partition_runs_leave(definitions_folder, lake_env):
    partitioned_project(definitions_folder)
    seed_prices(lake_env, [(d, 10.0 + d) for d in range(1, PRICE_DAYS + 1)])
    assert materialize(lake_env)[0].exit_code == 0
    seed_prices(lake_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS + 1)])
    for day in ("2024-01-05", "2024-01-06", "2024-01-07"):  # a small file each
        assert materialize(lake_env, "close_price", "--partition", day)[0].exit_code == 0
    before_files = live_files(lake_env, "features.close_price")
    before = table(lake_env, "close_price")
    conn = open_test_lake(lake_env, read_only=True)
    snapshot = conn.execute("SELECT id FROM ducklake_current_snapshot('featurestore')").fetchone()[
        0
    ]
    conn.close()

    result = runner.invoke(app, ["gc", "--json"], env=lake_env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files_merged"] >= 3
    assert live_files(lake_env, "features.close_price") < before_files
    assert table(lake_env, "close_price") == before
    conn = open_test_lake(lake_env, read_only=True)
    try:  # the snapshot before the merge reads the same rows
        rows = conn.execute(
            f"SELECT count(*), sum(close_price) FROM features.close_price AT (VERSION => {snapshot})"
        ).fetchone()
    finally:
        conn.close()
    assert rows == (len(before), sum(before.values()))
    assert [v for *_, v in latest_matches_the_table(lake_env, "close_price")] == [20.0] * 2
