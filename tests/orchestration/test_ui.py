"""What a person sees in the Dagster UI: schedules named in words, check results after the
materialization they audited, registered versions as metadata, registered-only schedules.
Real Dagster runs over a real registry."""

from __future__ import annotations

import dagster as dg
import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.orchestration.definitions import (
    RESOURCE_KEY,
    FeatureBuildResource,
    build_assets,
    build_definitions,
    code_location,
)
from featurestore_dagster.orchestration.naming import describe_cron
from featurestore_dagster.orchestration.translator import FeatureTranslator
from tests.conftest import base_definition

runner = CliRunner()
SQL = (
    "SELECT symbol, CAST(date AS DATE) AS date, close AS close_price FROM (VALUES"
    " ('a', '2024-01-02', 1.5), ('b', '2024-01-02', 2.5)) AS t(symbol, date, close)"
)
KEY = dg.AssetKey(["features", "close_price"])


def feature(**overrides):
    return base_definition(sources=[], transformation={"code": SQL}, **overrides)


@pytest.mark.parametrize(
    "cron,words",
    [
        ("0 22 * * 1-5", "weekdays at 22:00"),
        ("30 6 * * 0,6", "weekends at 06:30"),
        ("0 7 * * mon", "mondays at 07:00"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 0 1 * *", "monthly on day 1 at 00:00"),
        ("@daily", "daily at 00:00"),
        ("0 0 * 1 *", "0 0 * 1 *"),
    ],
)
def test_crons_in_words(cron, words):
    assert describe_cron(cron) == words


def test_schedules_and_jobs_are_named_for_people(definitions_folder, store_env):
    definitions_folder.write(feature(schedule="0 22 * * 1-5"))
    defs = build_definitions(FeatureGraph.load(definitions_folder.path), Settings.load())
    [schedule] = list(defs.schedules)
    assert schedule.name == "weekdays_at_22_00"
    assert schedule.job.name == "rebuild_weekdays_at_22_00"
    assert "weekdays at 22:00" in schedule.description and "close_price" in schedule.description


def test_a_scheduled_run_refuses_an_unregistered_definition(definitions_folder, store_env):
    definitions_folder.write(feature(schedule="0 22 * * 1-5"))
    graph = FeatureGraph.load(definitions_folder.path)
    translator = FeatureTranslator(code_versions={"close_price": "1.0.0+dev.0123abcd"})
    defs = build_definitions(graph, Settings.load(), translator=translator)
    job = defs.resolve_job_def("rebuild_weekdays_at_22_00")
    result = job.execute_in_process(raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "not registered versions: close_price (1.0.0+dev.0123abcd)" in str(
        failure.step_failure_data.error.message
    )
    assert result.get_asset_materialization_events() == []


def test_check_results_follow_the_materialization_they_audited(definitions_folder, store_env):
    definitions_folder.write(feature())
    graph = FeatureGraph.load(definitions_folder.path)
    result = dg.materialize(
        build_assets(graph, FeatureTranslator()),
        resources={RESOURCE_KEY: FeatureBuildResource(Settings.load())},
    )
    kinds = [
        e.event_type_value
        for e in result.all_events
        if e.event_type_value in {"ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"}
    ]
    assert kinds[0] == "ASSET_MATERIALIZATION" and kinds.count("ASSET_CHECK_EVALUATION") >= 2
    for evaluation in result.get_asset_check_evaluations():
        target = evaluation.target_materialization_data
        assert target is not None and target.run_id == result.run_id


def test_the_asset_shows_its_registered_versions(definitions_folder, store_env):
    definitions_folder.write(feature(changelog="First cut"))
    assert runner.invoke(app, ["apply"], env=store_env).exit_code == 0
    definitions_folder.write(feature(version="1.0.1", description="Words", changelog="Say more"))
    assert runner.invoke(app, ["apply"], env=store_env).exit_code == 0

    spec = next(s for s in code_location().resolve_all_asset_specs() if s.key == KEY)
    table = spec.metadata["registered_versions"].value
    assert table.index("| 1.0.1 | metadata |") < table.index("| 1.0.0 | initial |")
    assert "Say more" in table and "First cut" in table
    assert spec.code_version == "1.0.0"
    assert spec.metadata["code_version_is"] == (
        "registered version 1.0.0: the declared 1.0.1 builds the same data (its changes are"
        " metadata only)"
    )

    definitions_folder.write(feature(version="1.0.1", validation_rules=[]))
    spec = next(s for s in code_location().resolve_all_asset_specs() if s.key == KEY)
    assert spec.code_version.startswith("1.0.1+dev.")
    assert spec.metadata["code_version_is"].startswith("unregistered build of the declared 1.0.1")


def test_a_failed_build_names_the_definition_file_in_dagster(definitions_folder, store_env):
    path = definitions_folder.write(
        base_definition(
            sources=[],
            transformation={
                "code": "SELECT symbol, CAST(date AS DATE) AS date, CAST(close AS DOUBLE) AS"
                " close_price FROM (VALUES ('a', '2024-01-02', 'n/a')) AS t(symbol, date, close)"
            },
        )
    )
    graph = FeatureGraph.load(definitions_folder.path)
    result = dg.materialize(
        build_assets(graph, FeatureTranslator()),
        resources={RESOURCE_KEY: FeatureBuildResource(Settings.load())},
        raise_on_error=False,
    )
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.error.message)
    assert f"close_price ({path}): failed (Conversion Error" in text
