"""Input crafted to crash the CLI is one message and exit 2, with nothing written (issue 9):
usage JSON with 400-digit integers, deep nesting, non-UTF-8 bytes, lone surrogates, year-1
and year-9999 timestamps."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import base_definition

runner = CliRunner()

RUN = {
    "used_by_model": "ranker",
    "model_version": "1.0.0",
    "environment": "dev",
    "features": {"close_price": 0.5},
}
BIG = "1" + "0" * 400


def run_text(**changes) -> str:
    return json.dumps({**RUN, **changes})


HOSTILE = {
    "400-digit-importance": (run_text().replace("0.5", BIG), "feature_importance must be a number"),
    "400-digit-duration": (
        run_text(execution_duration_ms=1).replace(
            '"execution_duration_ms": 1', f'"execution_duration_ms": {BIG}'
        ),
        "execution_duration_ms must be a number",
    ),
    "400-digit-correlation": (
        run_text(correlations={"close_price": 0}).replace(
            '{"close_price": 0}', f'{{"close_price": {BIG}}}'
        ),
        "correlation_with_target must be a number",
    ),
    "5000-digit-integer": (run_text().replace("0.5", "1" + "0" * 5000), "invalid JSON"),
    "nested-100000": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "nested-in-a-field": (
        run_text().replace('"ranker"', "[" * 5000 + "]" * 5000),
        "nested too deeply",
    ),
    "nested-value": (run_text(model_version=[[[[[["x"]]]]]]), "model_version must be"),
    "lone-surrogate": (run_text(used_by_model="x").replace('"x"', '"\\ud800"'), "lone surrogate"),
    "surrogate-feature": (
        run_text().replace('"close_price"', '"\\udfff"'),
        "lone surrogate",
    ),
    "year-1-with-offset": (run_text(usage_timestamp="0001-01-01T00:00:00+05:00"), "out of range"),
    "year-9999-with-offset": (
        run_text(usage_timestamp="9999-12-31T23:59:59-05:00"),
        "out of range",
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_usage")
    folder = root / "feature_definitions"
    folder.mkdir()
    import yaml

    (folder / "close_price.yaml").write_text(yaml.safe_dump(base_definition()))
    env = {
        "FEATURESTORE_DEFINITIONS": str(folder),
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{root / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(root / "lake"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{root / 'registry.db'}",
        "FEATURESTORE_BOOTSTRAP": "",
    }
    result = runner.invoke(app, ["apply"], env=env)
    assert result.exit_code == 0, result.output
    return root, env


def history(env) -> list:
    """Records of the hostile cases (the byte-order-mark test records as model 'café')."""
    result = runner.invoke(app, ["usage", "history", "close_price", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return [r for r in json.loads(result.stdout) if r["used_by_model"] != "café"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_usage_json_is_one_message(case, project):
    root, env = project
    text, message = HOSTILE[case]
    path = root / f"{case}.json"
    path.write_text(text)
    result = runner.invoke(app, ["usage", "record", "--from-json", str(path)], env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr) < 2000  # one message, not the input echoed back
    assert history(env) == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"used_by_model": "caf\xe9", "model_version": "1.0.0", "environment": "dev",'
        b' "features": {"close_price": 0.5}}',
        b"\xff\xfe{\x00}\x00",
    ],
    ids=["latin-1", "utf-16"],
)
def test_non_utf8_usage_json_is_one_message(data, project, tmp_path):
    _, env = project
    path = tmp_path / "usage.json"
    path.write_bytes(data)
    result = runner.invoke(app, ["usage", "record", "--from-json", str(path)], env=env)
    assert result.exit_code == 2, result.output
    assert "not UTF-8" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["usage", "record", "--from-json", "-"], input=data, env=env)
    assert result.exit_code == 2, result.output
    assert "not UTF-8" in result.stderr
    assert history(env) == []


def test_utf8_with_a_byte_order_mark_is_fine(project, tmp_path):
    _, env = project
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + run_text(used_by_model="café").encode("utf-8"))
    result = runner.invoke(app, ["usage", "record", "--from-json", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["used_by_model"] == "café"
