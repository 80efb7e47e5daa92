"""`featurestore list` and `show`: filters, and the same fields as the Python API."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import base_definition

runner = CliRunner()


@pytest.fixture
def project(definitions_folder, store_env):
    definitions_folder.write(base_definition(tags=["price", "daily"]))
    definitions_folder.write(
        base_definition(
            feature_name="volume_raw",
            feature_type="fundamental",
            owner="data@example.com",
            status="draft",
            tags=["volume"],
            transformation={"code": "SELECT symbol, date, volume AS volume_raw FROM raw.prices"},
        )
    )
    assert runner.invoke(app, ["apply"], env=store_env).exit_code == 0
    return store_env


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], ["close_price", "volume_raw"]),
        (["--feature-type", "fundamental"], ["volume_raw"]),
        (["--status", "active"], ["close_price"]),
        (["--owner", "data@example.com"], ["volume_raw"]),
        (["--tag", "price", "--tag", "daily"], ["close_price"]),
        (["--tag", "price", "--tag", "volume"], []),
        (["--skip", "1"], ["volume_raw"]),
        (["--limit", "1"], ["close_price"]),
    ],
)
def test_list_filters(project, args, expected):
    result = runner.invoke(app, ["list", *args, "--json"], env=project)
    assert result.exit_code == 0, result.output
    assert [item["feature_name"] for item in json.loads(result.stdout)] == expected


def test_list_json_carries_registry_state(project):
    result = runner.invoke(app, ["list", "--json"], env=project)
    item = json.loads(result.stdout)[0]
    assert item["current_version"] == "1.0.0"
    assert item["usage_count"] == 0
    assert item["downstream_features"] == []
    assert item["transformation"]["transformation_type"] == "sql"


def test_show_json_and_unknown_feature(project):
    result = runner.invoke(app, ["show", "close_price", "--json"], env=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["feature_name"] == "close_price" and data["current_version"] == "1.0.0"
    result = runner.invoke(app, ["show", "nope_price"], env=project)
    assert result.exit_code == 2
    assert "unknown feature 'nope_price'" in result.stderr
