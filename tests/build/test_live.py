"""Auditing live tables without building: ``check NAME --no-build`` and a check run from the
Dagster UI on its own audit the published table as it is. Real CLI, DuckDB and Dagster."""

from __future__ import annotations

import json

import dagster as dg
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.orchestration.definitions import (
    RESOURCE_KEY,
    FeatureBuildResource,
    build_assets,
)
from featurestore_dagster.orchestration.translator import FeatureTranslator
from featurestore_dagster.storage.lake import open_lake
from tests.conftest import base_definition

runner = CliRunner()
SQL = (
    "SELECT symbol, CAST(date AS DATE) AS date, close AS close_price FROM (VALUES"
    " ('a', '2024-01-02', 1.5), ('b', '2024-01-02', 2.5)) AS t(symbol, date, close)"
)
KEY = dg.AssetKey(["features", "close_price"])


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def spoil_live_table(settings: Settings) -> None:
    """A bad row written by hand into the published table (range rule: min 0)."""
    conn = open_lake(settings)
    try:
        conn.execute("INSERT INTO features.close_price VALUES ('c', DATE '2024-01-02', -7.0)")
    finally:
        conn.close()


def live_rows(settings: Settings) -> list[tuple]:
    conn = open_lake(settings, read_only=True)
    try:
        return conn.execute("SELECT * FROM features.close_price ORDER BY symbol").fetchall()
    finally:
        conn.close()


def test_check_no_build_audits_the_live_table_as_it_is(definitions_folder, store_env):
    definitions_folder.write(base_definition(sources=[], transformation={"code": SQL}))
    assert run(store_env, "apply").exit_code == 0
    assert run(store_env, "check", "close_price", "--no-build").exit_code == 1  # nothing live
    assert run(store_env, "materialize").exit_code == 0
    assert run(store_env, "check", "close_price", "--no-build").exit_code == 0

    settings = Settings.load()
    spoil_live_table(settings)
    before = live_rows(settings)
    result = run(store_env, "check", "close_price", "--no-build", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    [feature] = report["features"]
    assert feature["rows"] == 3 and feature["status"] == "rejected"
    assert {c["name"]: c["passed"] for c in feature["checks"]}["range"] is False
    text = run(store_env, "check", "close_price", "--no-build")
    assert "Audited live tables" in text.stdout and "failed their audit" in text.stderr
    assert live_rows(settings) == before  # audited, not rebuilt
    runs = json.loads(run(store_env, "show", "close_price", "--json").stdout)["materializations"]
    assert len(runs) == 1  # nothing recorded as a build


def test_a_check_run_alone_from_dagster_audits_the_live_table(definitions_folder, store_env):
    definitions_folder.write(base_definition(sources=[], transformation={"code": SQL}))
    graph = FeatureGraph.load(definitions_folder.path)
    settings = Settings.load()
    assets = build_assets(graph, FeatureTranslator())
    resources = {RESOURCE_KEY: FeatureBuildResource(settings)}
    assert dg.materialize(assets, resources=resources).success
    spoil_live_table(settings)

    job = dg.define_asset_job(
        "range_only", selection=dg.AssetSelection.checks(dg.AssetCheckKey(KEY, "range"))
    )
    defs = dg.Definitions(assets=assets, jobs=[job], resources=resources)
    result = defs.resolve_job_def("range_only").execute_in_process(raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "range" and evaluation.passed is False
    assert result.get_asset_materialization_events() == []
    assert len(live_rows(settings)) == 3
