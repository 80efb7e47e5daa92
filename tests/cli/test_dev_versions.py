"""The version on a table is the truth: unregistered definitions build as +dev versions (code
version, materialization record, summary), with a warning; --registered-only refuses them.
Real CLI, real SQLite registry, real Dagster runs."""

from __future__ import annotations

import json
import re

import dagster as dg
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.definitions.graph import FeatureGraph
from tests.conftest import base_definition

runner = CliRunner()

SQL = (
    "SELECT symbol, CAST(date AS DATE) AS date, close {op} AS close_price FROM (VALUES"
    " ('a', '2024-01-02', 1.5), ('b', '2024-01-02', 2.5)) AS t(symbol, date, close)"
)


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def feature(op=""):
    return base_definition(sources=[], transformation={"code": SQL.format(op=op)})


def test_an_edited_unregistered_definition_builds_as_a_dev_version(
    definitions_folder, store_env, tmp_path
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**store_env, "DAGSTER_HOME": str(home)}
    definitions_folder.write(feature())
    assert run(env, "apply").exit_code == 0
    first = run(env, "materialize", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)[0]["version"] == "1.0.0"
    assert "not registered" not in first.stderr

    definitions_folder.write(feature("* 100"))  # a data change, not registered
    fingerprint = FeatureGraph.load(definitions_folder.path).data_fingerprint("close_price")
    dev = f"1.0.0+dev.{fingerprint[:8]}"
    second = run(env, "materialize")
    assert second.exit_code == 0, second.output
    assert dev in second.stdout
    assert "warning: built 1 definition(s) that are not registered versions" in second.stderr
    assert f"close_price ({dev})" in second.stderr

    shown = json.loads(run(env, "show", "close_price", "--json").stdout)
    latest = shown["materializations"][0]
    assert (latest["version"], latest["code_version"]) == (dev, dev)
    assert latest["max_value"] == 250.0

    instance = dg.DagsterInstance.from_config(str(home))
    event = instance.get_latest_materialization_event(dg.AssetKey(["features", "close_price"]))
    assert event.asset_materialization.tags["dagster/code_version"] == dev
    assert event.asset_materialization.metadata["version"].value == dev

    refused = run(env, "materialize", "--registered-only")
    assert refused.exit_code == 2
    assert f"not registered versions: close_price ({dev})" in refused.stderr
    assert len(run(env, "show", "close_price", "--json").stdout) > 0
    runs = json.loads(run(env, "show", "close_price", "--json").stdout)["materializations"]
    assert len(runs) == 2  # the refused run built nothing

    # Registered, it is its own version again.
    definitions_folder.write(feature("* 100") | {"version": "1.1.0"})
    assert run(env, "apply").exit_code == 0
    third = run(env, "materialize", "--registered-only", "--json")
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout)[0]["version"] == "1.1.0"


def test_a_fresh_project_builds_dev_versions_in_the_ui_code_location(definitions_folder, store_env):
    from featurestore_dagster.orchestration.definitions import code_location

    definitions_folder.write(feature())
    specs = {s.key.path[-1]: s for s in code_location().resolve_all_asset_specs()}
    assert re.fullmatch(r"1\.0\.0\+dev\.[0-9a-f]{8}", specs["close_price"].code_version)
