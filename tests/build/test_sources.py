"""Source tables: a missing one fails its features with a message naming it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.build.test_publish import child, seed_prices
from tests.conftest import base_definition

runner = CliRunner()


def test_missing_source_fails_the_feature_and_skips_its_downstream(
    definitions_folder, store_env, tmp_path
):
    definitions_folder.write(base_definition())
    definitions_folder.write(child())
    result = runner.invoke(app, ["materialize", "--json"], env=store_env)
    assert result.exit_code == 1
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    assert builds["close_price"]["status"] == "failed"
    assert "source table raw.prices does not exist" in builds["close_price"]["error"]
    assert builds["double_price"]["status"] == "skipped"
    # Loaded later, the next run finds it.
    seed_prices(store_env)
    assert runner.invoke(app, ["materialize"], env=store_env).exit_code == 0
