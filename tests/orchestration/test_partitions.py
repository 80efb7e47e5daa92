"""Time-partitioned features: definitions, steps, windows, and real partition runs."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
from typer.testing import CliRunner

from featurestore_dagster.build.partitions import BuildWindow, windowed_sql
from featurestore_dagster.cli.app import app
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError, PartitionError
from featurestore_dagster.orchestration.definitions import (
    RESOURCE_KEY,
    FeatureBuildResource,
    build_assets,
    build_definitions,
)
from featurestore_dagster.orchestration.partitions import parse_partition_range, partition_range
from featurestore_dagster.orchestration.steps import plan_steps
from featurestore_dagster.orchestration.translator import FeatureTranslator
from tests.build.test_publish import seed_prices
from tests.conftest import base_definition, open_test_lake

DAILY = {"type": "daily", "start": "2024-01-02", "lookback": "3d"}


def derived(name, parents, partitions=None, **overrides):
    reads = " JOIN ".join(
        f"features.{p} AS t{i}" + (" USING (symbol, date)" if i else "")
        for i, p in enumerate(parents)
    )
    return base_definition(
        feature_name=name,
        feature_type="derived",
        upstream_features=list(parents),
        sources=[],
        partitions=partitions,
        transformation={
            "code": f"SELECT symbol, date, avg(t0.{parents[0]}) OVER (PARTITION BY symbol"
            f" ORDER BY date ROWS 2 PRECEDING) AS {name} FROM {reads}"
        },
        **overrides,
    )


def graph_of(*payloads):
    return FeatureGraph.from_definitions([FeatureDefinition.model_validate(p) for p in payloads])


def test_partitioned_and_unpartitioned_features_build_in_separate_steps_without_cycles():
    graph = graph_of(
        base_definition(),  # close_price, unpartitioned
        derived("smooth", ["close_price"], partitions=DAILY),
        derived("smooth_twice", ["smooth"], partitions=DAILY),
        derived("summary", ["smooth_twice"]),  # unpartitioned again, below partitioned ones
        derived("monthly", ["close_price"], partitions={"type": "monthly", "start": "2024-01-01"}),
    )
    steps = {s.name: list(s.features) for s in plan_steps(graph.compiled)}
    assert steps == {
        "build_raw": ["close_price"],
        "build_derived__daily__2": ["smooth", "smooth_twice"],
        "build_derived__monthly__2": ["monthly"],
        "build_derived__3": ["summary"],
    }


def test_partitioned_features_get_time_partitions_and_a_single_run_backfill(tmp_path):
    graph = graph_of(
        base_definition(partitions=DAILY),
        derived(
            "weekly_avg", ["close_price"], partitions={"type": "weekly", "start": "2024-01-01"}
        ),
    )
    defs = build_definitions(graph, Settings.load(definitions_path=tmp_path))
    dg.Definitions.validate_loadable(defs)
    nodes = defs.resolve_asset_graph()
    daily = nodes.get(dg.AssetKey(["features", "close_price"]))
    assert isinstance(daily.partitions_def, dg.DailyPartitionsDefinition)
    assert daily.backfill_policy == dg.BackfillPolicy.single_run()
    weekly = nodes.get(dg.AssetKey(["features", "weekly_avg"])).partitions_def
    assert weekly.get_first_partition_key() == "2024-01-01"  # a Monday: weeks start on Monday
    assert daily.partitions_def.get_first_partition_key() == "2024-01-02"
    assert daily.metadata["partitions"].value == DAILY


@pytest.mark.parametrize(
    "partitions,field",
    [
        ({"type": "hourly", "start": "2024-01-01"}, "partitions.type"),
        ({"type": "daily", "start": "someday"}, "partitions.start"),
        ({"type": "daily", "start": "2024-01-01", "lookback": "3h"}, "partitions.lookback"),
        ({"type": "daily", "start": "2024-01-01", "window": "3d"}, "partitions.window"),
    ],
)
def test_bad_partitions_name_the_field(definitions_folder, partitions, field):
    definitions_folder.write(base_definition(partitions=partitions))
    with pytest.raises(DefinitionError) as caught:
        FeatureGraph.load(definitions_folder.path)
    assert [issue.field for issue in caught.value.issues] == [field]


def test_partition_keys_outside_the_range_are_refused():
    definition = FeatureDefinition.model_validate(base_definition(partitions=DAILY))
    assert partition_range(definition, "2024-02-01") == dg.PartitionKeyRange(
        "2024-02-01", "2024-02-01"
    )
    assert partition_range(definition, *parse_partition_range("2024-02-01...2024-02-29")) == (
        dg.PartitionKeyRange("2024-02-01", "2024-02-29")
    )
    for bad in ("2024-01-01", "2024-02-30", "tomorrow", "2999-01-01"):
        with pytest.raises(PartitionError, match="partitions run from 2024-01-02 to"):
            partition_range(definition, bad)
    with pytest.raises(PartitionError, match="reversed"):
        partition_range(definition, "2024-02-02", "2024-02-01")
    with pytest.raises(PartitionError, match="not partitioned"):
        partition_range(FeatureDefinition.model_validate(base_definition()), "2024-02-01")
    with pytest.raises(PartitionError, match="FIRST...LAST"):
        parse_partition_range("2024-02-01..2024-02-03")


def test_windowed_sql_reads_upstream_from_the_lookback_and_keeps_the_window():
    definition = FeatureDefinition.model_validate(
        derived("smooth", ["close_price"], partitions=DAILY)
    )
    window = BuildWindow(dt.date(2024, 2, 1), dt.date(2024, 2, 2))
    sql = windowed_sql(
        "SELECT symbol, date, close_price AS smooth FROM features.close_price",
        definition,
        window,
        {"features.close_price": "date"},
    )
    upstream = sql[sql.index('FROM "features"."close_price"') :]
    assert upstream.index("'2024-01-29'") < upstream.index("'2024-02-02'")  # 3 days back
    assert sql.endswith("\"date\" >= DATE '2024-02-01' AND \"date\" < DATE '2024-02-02'")
    assert window.label == "2024-02-01"
    assert BuildWindow(dt.date(2024, 2, 1), dt.date(2024, 3, 1)).label == "2024-02-01...2024-02-29"


# --- real partition runs ---------------------------------------------------------------------

runner = CliRunner()
PRICE_DAYS = 10  # 2024-01-02 .. 2024-01-11


def partitioned_project(definitions_folder):
    definitions_folder.write(
        base_definition(
            partitions={"type": "daily", "start": "2024-01-02"},
            transformation={
                "code": "SELECT symbol, date, close AS close_price FROM raw.prices"
                " WHERE date >= {{ partition_start }} AND date < {{ partition_end }}"
            },
        )
    )
    definitions_folder.write(derived("smooth", ["close_price"], partitions=DAILY))
    definitions_folder.write(derived("summary", ["smooth"]))  # unpartitioned, downstream


def table(env, name):
    conn = open_test_lake(env, read_only=True)
    try:
        return {
            (s, str(d)): round(v, 6)
            for s, d, v in conn.execute(f"SELECT * FROM features.{name}").fetchall()
        }
    finally:
        conn.close()


def materialize(env, *args):
    result = runner.invoke(app, ["materialize", *args, "--json"], env=env)
    return result, (json.loads(result.stdout) if result.stdout.startswith("[") else None)


def test_a_partition_run_rebuilds_only_its_window(definitions_folder, store_env):
    partitioned_project(definitions_folder)
    seed_prices(store_env, [(d, 10.0 + d) for d in range(1, PRICE_DAYS + 1)])
    result, builds = materialize(store_env)  # everything: one run per partitioning
    assert result.exit_code == 0, result.output
    assert [b["feature_name"] for b in builds] == ["close_price", "smooth", "summary"]
    assert len(table(store_env, "close_price")) == 2 * PRICE_DAYS
    smooth_before = table(store_env, "smooth")

    # new raw prices everywhere; only 2024-01-05 is rebuilt
    seed_prices(store_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS + 1)])
    result, builds = materialize(store_env, "smooth", "--partition", "2024-01-05")
    assert result.exit_code == 0, result.output
    assert [(b["feature_name"], b["window"]) for b in builds] == [
        ("close_price", "2024-01-05"),
        ("smooth", "2024-01-05"),
    ]  # the partitioned upstream, same window; the unpartitioned downstream is not built
    assert builds[0]["rows"] == 2  # computed, audited and replaced: one day, two symbols
    close = table(store_env, "close_price")
    assert close[("AAA", "2024-01-05")] == 104.0  # replaced
    assert close[("AAA", "2024-01-04")] == 13.0 and close[("AAA", "2024-01-06")] == 15.0  # kept
    smooth = table(store_env, "smooth")
    # the 3-row moving average of 2024-01-05 read its lookback (01-03, 01-04) from the table
    assert smooth[("AAA", "2024-01-05")] == round((12.0 + 13.0 + 104.0) / 3, 6)
    assert {k: v for k, v in smooth.items() if k[1] != "2024-01-05"} == {
        k: v for k, v in smooth_before.items() if k[1] != "2024-01-05"
    }

    # a range is one run over the whole window
    result, builds = materialize(
        store_env, "close_price", "--partition-range", "2024-01-06...2024-01-08"
    )
    assert result.exit_code == 0, result.output
    assert [(b["feature_name"], b["window"], b["rows"]) for b in builds] == [
        ("close_price", "2024-01-06...2024-01-08", 6)
    ]
    close = table(store_env, "close_price")
    assert [close[("BBB", f"2024-01-0{d}")] for d in (6, 7, 8, 9)] == [105.0, 106.0, 107.0, 18.0]


def file_order_dates(env, name) -> list[str]:
    """The dates of ``features.<name>`` in the order its data files hold them."""
    conn = open_test_lake(env, read_only=True)
    try:
        return [str(d) for (d,) in conn.execute(f"SELECT date FROM features.{name}").fetchall()]
    finally:
        conn.close()


def test_partitioned_tables_are_stored_in_time_order_and_a_whole_range_run_replaces_them(
    definitions_folder, store_env
):
    partitioned_project(definitions_folder)
    # raw rows newest first: the SQL yields them so, the live table stores them by date
    seed_prices(store_env, [(d, 10.0 + d) for d in range(PRICE_DAYS, 0, -1)])
    assert materialize(store_env)[0].exit_code == 0
    dates = file_order_dates(store_env, "close_price")
    assert dates == sorted(dates) and len(dates) == 2 * PRICE_DAYS
    assert materialize(store_env, "close_price", "--partition", "2024-01-05")[0].exit_code == 0

    # a range from the first partition that leaves the newest days out keeps them
    seed_prices(store_env, [(d, 100.0 + d) for d in range(PRICE_DAYS, 0, -1)])
    result, _ = materialize(
        store_env, "close_price", "--partition-range", "2024-01-02...2024-01-09"
    )
    assert result.exit_code == 0, result.output
    close = table(store_env, "close_price")
    assert close[("AAA", "2024-01-09")] == 108.0 and close[("AAA", "2024-01-10")] == 19.0
    assert [v for *_, v in latest_matches_the_table(store_env, "close_price")] == [20.0] * 2

    # the whole range holds every row: the table is replaced, still in time order
    result, builds = materialize(
        store_env, "close_price", "--partition-range", "2024-01-02...2024-01-11"
    )
    assert result.exit_code == 0, result.output
    assert builds[0]["rows"] == 2 * PRICE_DAYS
    close = table(store_env, "close_price")
    assert close == {
        (s, str(dt.date(2024, 1, 1) + dt.timedelta(days=d))): 100.0 + d
        for s in ("AAA", "BBB")
        for d in range(1, PRICE_DAYS + 1)
    }
    assert file_order_dates(store_env, "close_price") == sorted(
        close_dates := [k[1] for k in close]
    )
    assert len(close_dates) == 2 * PRICE_DAYS
    assert [v for *_, v in latest_matches_the_table(store_env, "close_price")] == [110.0] * 2


def latest_matches_the_table(env, name) -> list[tuple]:
    """``_latest.<name>`` and the newest row per symbol of ``features.<name>``, both sorted."""
    conn = open_test_lake(env, read_only=True)
    try:
        stored = conn.execute(f"SELECT * FROM _latest.{name} ORDER BY ALL").fetchall()
        whole = conn.execute(
            f"SELECT symbol, max(date), arg_max_null({name}, date) FROM features.{name}"
            " GROUP BY symbol ORDER BY ALL"
        ).fetchall()
    finally:
        conn.close()
    assert stored == whole
    return stored


def test_latest_values_follow_partition_runs(definitions_folder, store_env):
    partitioned_project(definitions_folder)
    seed_prices(store_env, [(d, 10.0 + d) for d in range(1, PRICE_DAYS + 1)])
    assert materialize(store_env)[0].exit_code == 0
    last = "2024-01-11"
    # the newest day rebuilt with new values: the latest rows follow it
    seed_prices(store_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS + 1)])
    assert materialize(store_env, "close_price", "--partition", last)[0].exit_code == 0
    assert [v for *_, v in latest_matches_the_table(store_env, "close_price")] == [110.0] * 2
    # a past day rebuilt: the latest rows stay
    assert materialize(store_env, "close_price", "--partition", "2024-01-03")[0].exit_code == 0
    assert [v for *_, v in latest_matches_the_table(store_env, "close_price")] == [110.0] * 2
    # the newest day has no rows any more: the latest rows fall back to the day before
    seed_prices(store_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS)])
    assert materialize(store_env, "close_price", "--partition", last)[0].exit_code == 0
    latest = latest_matches_the_table(store_env, "close_price")
    # (2024-01-10 was not rebuilt since the first run: its value is still the first one)
    assert [(str(d), v) for _, d, v in latest] == [("2024-01-10", 19.0)] * 2


def test_multiprocess_runs_partitioned_and_partition_builds(
    definitions_folder, store_env, monkeypatch
):
    """--executor multiprocess: a whole build (one run per partitioning) and a partition run
    (its window only) go through the multiprocess executor like unpartitioned ones."""
    partitioned_project(definitions_folder)
    seed_prices(store_env, [(d, 10.0 + d) for d in range(1, PRICE_DAYS + 1)])
    multiprocess = ["--executor", "multiprocess", "--processes", "1"]
    result, builds = materialize(store_env, *multiprocess)
    assert result.exit_code == 0, result.output
    assert [b["feature_name"] for b in builds] == ["close_price", "smooth", "summary"]
    assert len(table(store_env, "close_price")) == 2 * PRICE_DAYS

    seed_prices(store_env, [(d, 100.0 + d) for d in range(1, PRICE_DAYS + 1)])
    result, builds = materialize(store_env, "smooth", "--partition", "2024-01-05", *multiprocess)
    assert result.exit_code == 0, result.output
    assert [(b["feature_name"], b["window"], b["rows"]) for b in builds] == [
        ("close_price", "2024-01-05", 2),
        ("smooth", "2024-01-05", 2),
    ]
    result, builds = materialize(
        store_env, "close_price", "--partition-range", "2024-01-06...2024-01-07", *multiprocess
    )
    assert result.exit_code == 0, result.output
    assert [(b["window"], b["rows"]) for b in builds] == [("2024-01-06...2024-01-07", 4)]
    close = table(store_env, "close_price")
    assert [close[("AAA", f"2024-01-0{d}")] for d in (4, 5, 6, 7, 8)] == [
        13.0, 104.0, 105.0, 106.0, 17.0
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args,message",
    [
        (["close_price", "--partition", "2024-01-01"], "partitions run from 2024-01-02"),
        (["close_price", "--partition-range", "2024-01-03...2024-01-02"], "reversed"),
        (["close_price", "--partition-range", "2024-01-03"], "FIRST...LAST"),
        (["summary", "--partition", "2024-01-03"], "partitioned alike"),
        (["--partition", "2024-01-03"], "name the partitioned features"),
    ],
)
def test_bad_partition_arguments_are_exit_2(definitions_folder, store_env, args, message):
    partitioned_project(definitions_folder)
    result = runner.invoke(app, ["materialize", *args], env=store_env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_checks_of_a_partition_run_say_which_window_they_audited(tmp_path):
    graph = graph_of(
        base_definition(
            partitions={"type": "daily", "start": "2024-01-02"},
            transformation={
                "code": "SELECT symbol, date, close AS close_price FROM raw.prices"
                " WHERE date >= {{ partition_start }} AND date < {{ partition_end }}"
            },
        )
    )
    path = {
        "FEATURESTORE_DEFINITIONS": str(tmp_path),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{tmp_path / 'r.db'}",
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{tmp_path / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(tmp_path / "lake"),
    }
    seed_prices(path, [(1, 1.0), (2, -5.0)])  # 2024-01-03 breaks the blocking range min 0
    settings = Settings.load(
        definitions_path=tmp_path,
        lake_catalog=path["FEATURESTORE_LAKE_CATALOG"],
        lake_data=path["FEATURESTORE_LAKE_DATA"],
        registry_url=path["FEATURESTORE_REGISTRY_URL"],
    )
    resource = FeatureBuildResource(settings, record_materializations=False)
    assets = build_assets(graph, FeatureTranslator())
    key = dg.AssetKey(["features", "close_price"])
    with dg.instance_for_test() as instance:
        for partition, passed in (("2024-01-02", True), ("2024-01-03", False)):
            result = dg.materialize(
                assets, partition_key=partition, instance=instance,
                resources={RESOURCE_KEY: resource}, raise_on_error=False,
            )  # fmt: skip
            (evaluation,) = [
                e for e in result.get_asset_check_evaluations() if e.check_name == "range"
            ]
            assert evaluation.passed is passed
            assert evaluation.description.endswith(f"(audited window {partition})")
            assert evaluation.metadata["partition_window"].value == partition
        materialized = instance.get_materialized_partitions(key)
    assert materialized == {"2024-01-02"}  # the rejected window was not published
    assert table_rows(path) == [("AAA", "2024-01-02", 1.0), ("BBB", "2024-01-02", 1.0)]


def table_rows(env):
    conn = open_test_lake(env, read_only=True)
    try:
        return [
            (s, str(d), v)
            for s, d, v in conn.execute(
                "SELECT * FROM features.close_price ORDER BY symbol, date"
            ).fetchall()
        ]
    finally:
        conn.close()
