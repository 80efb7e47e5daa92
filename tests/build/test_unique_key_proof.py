"""The unique_key proof inside real builds: proven where sound, scanned everywhere else."""

from __future__ import annotations

import json

import dagster as dg
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.orchestration.definitions import build_definitions
from tests.build.test_publish import child, seed_prices
from tests.conftest import base_definition

runner = CliRunner()


def unique_key(build):
    return next(c for c in build["checks"] if c["name"] == "unique_key")


def materialize(env, *names):
    result = runner.invoke(app, ["materialize", "--json", *names], env=env)
    return result.exit_code, {b["feature_name"]: b for b in json.loads(result.stdout)}


def test_projection_of_a_feature_built_in_the_run_is_proven_and_duplicates_are_scanned(
    definitions_folder, store_env, tmp_path
):
    seed_prices(store_env)
    definitions_folder.write(base_definition())
    definitions_folder.write(child())  # close_price * 2: a projection
    definitions_folder.write(
        child(
            feature_name="doubled_rows",
            transformation={
                "code": "SELECT symbol, date, close_price AS doubled_rows FROM features.close_price"
                " UNION ALL SELECT symbol, date, close_price FROM features.close_price"
            },
        )
    )
    code, builds = materialize(store_env)
    assert code == 1
    # The source-reading feature is scanned; its projection is proven from it.
    assert "method" not in unique_key(builds["close_price"])["metadata"]
    proven = unique_key(builds["double_price"])
    assert proven["passed"] and proven["metadata"]["method"] == "proven"
    assert proven["metadata"]["proven_from"] == "close_price"
    # The UNION ALL doubles every key: scanned, rejected, live table never created.
    scanned = unique_key(builds["doubled_rows"])
    assert not scanned["passed"] and scanned["metadata"]["duplicate_rows"] == 6
    assert builds["doubled_rows"]["status"] == "rejected"


def test_an_upstream_not_built_in_the_run_is_not_trusted(definitions_folder, store_env, tmp_path):
    """Its live table may predate its current definition (or have been edited): scan."""
    seed_prices(store_env)
    definitions_folder.write(base_definition())
    definitions_folder.write(child())
    assert materialize(store_env)[0] == 0
    settings = Settings.load()
    graph = FeatureGraph.from_settings(settings)
    defs = build_definitions(graph, settings)
    result = dg.materialize(
        defs.assets, selection=[dg.AssetKey(["features", "double_price"])], resources=defs.resources
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["unique_key"].passed
    assert "method" not in checks["unique_key"].metadata
    assert checks["unique_key"].metadata["duplicate_rows"].value == 0
