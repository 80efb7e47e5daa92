"""Partition runs on both lake catalogs: a window's rows, the latest values (one MERGE, and the
whole-table recompute when an entity's newest row left the window) and a whole-range run."""

from __future__ import annotations

from tests.build.test_publish import seed_prices
from tests.orchestration.test_partitions import (
    PRICE_DAYS,
    file_order_dates,
    latest_matches_the_table,
    materialize,
    partitioned_project,
    table,
)


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
