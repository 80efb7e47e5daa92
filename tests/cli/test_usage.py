"""``featurestore lineage``, ``usage record``, ``usage history`` and ``stats`` through the real
CLI (CliRunner, one subprocess), on a SQLite registry registered with ``featurestore apply``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import REPO_ROOT, usage_payloads

runner = CliRunner()


@pytest.fixture
def project(definitions_folder, store_env):
    """Definitions written and registered; the environment points the CLI at them."""
    for payload in usage_payloads():
        definitions_folder.write(payload)
    result = runner.invoke(app, ["apply"])
    assert result.exit_code == 0, result.output
    return definitions_folder


def cli(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def record_args(*features: str, env: str = "production") -> list[str]:
    args = ["usage", "record", "--model", "ranker", "--model-version", "2.3.0", "--env", env]
    for feature in features:
        args += ["--feature", feature]
    return args


def history(name: str) -> list[dict]:
    result = cli("usage", "history", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_record_then_read_back(project):
    result = cli(
        *record_args("close_price=0.4", "rsi_14d=0.2", "daily_return"),
        "--correlation",
        "rsi_14d=-0.3",
        "--execution-id",
        "run-7",
        "--duration-ms",
        "120",
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["feature_name"] for r in records] == ["close_price", "rsi_14d", "daily_return"]
    assert records[0]["feature_version"] == "1.1.0"
    assert records[1]["correlation_with_target"] == -0.3
    assert records[2]["feature_importance"] is None
    assert {r["execution_id"] for r in records} == {"run-7"}
    assert {r["execution_duration_ms"] for r in records} == {120.0}

    stats = cli("stats", "close_price", "--json")
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert (data["total_usage"], data["unique_models"], data["environments"]) == (
        1,
        1,
        ["production"],
    )
    assert data["avg_importance"] == 0.4
    assert data["by_model"][0]["used_by_model"] == "ranker"

    assert [h["feature_name"] for h in history("rsi_14d")] == ["rsi_14d"]

    text = cli("stats", "close_price")
    assert text.exit_code == 0
    assert "total usage" in text.stdout and "ranker" in text.stdout


def test_history_newest_first_with_limit(project):
    for day in (1, 3, 2):
        result = cli(*record_args("close_price=0.1"), "--timestamp", f"2024-03-0{day}T10:00:00Z")
        assert result.exit_code == 0, result.output
    result = cli("usage", "history", "close_price", "--limit", "2", "--json")
    times = [r["usage_timestamp"] for r in json.loads(result.stdout)]
    assert times == ["2024-03-03T10:00:00Z", "2024-03-02T10:00:00Z"]
    table = cli("usage", "history", "close_price")
    assert "2024-03-03 10:00:00" in table.stdout


def test_lineage_tree_and_models(project):
    assert cli(*record_args("rsi_14d=0.5")).exit_code == 0
    result = cli("lineage", "rsi_14d")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "close_price" in text and "1.1.0" in text and "momentum_signal" in text
    assert "source raw.prices" not in text  # one level only without --recursive
    assert "Models that used it" in text and "ranker" in text

    deep = cli("lineage", "momentum_signal", "--recursive")
    assert deep.exit_code == 0, deep.output
    assert "source raw.prices" in deep.stdout
    assert "(shown above)" in deep.stdout  # close_price reached twice (a diamond)

    data = json.loads(cli("lineage", "momentum_signal", "--recursive", "--json").stdout)
    assert data["all_upstream"] == ["close_price", "daily_return", "rsi_14d"]
    assert data["total_dependents_count"] == 0
    assert data["consuming_models"] == []


def test_from_json_file_and_stdin(project, tmp_path):
    payload = [
        {
            "used_by_model": "sizer",
            "model_version": "1",
            "features": {"close_price": 0.5, "daily_return": 0.1},
            "correlations": {"close_price": 0.2},
        },
        {"feature_name": "rsi_14d", "used_by_model": "x", "model_version": "2"},
    ]
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(payload))
    result = cli("usage", "record", "--env", "staging", "--from-json", str(path), "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [(r["feature_name"], r["environment"]) for r in records] == [
        ("close_price", "staging"),
        ("daily_return", "staging"),
        ("rsi_14d", "staging"),
    ]
    single = {
        "used_by_model": "y",
        "model_version": "1",
        "environment": "dev",
        "features": {"momentum_signal": 1.0},
    }
    result = cli("usage", "record", "--from-json", "-", input=json.dumps(single))
    assert result.exit_code == 0, result.output
    assert "recorded 1 usage record(s) for y 1 (dev)" in result.stdout


BAD = [
    ("unknown feature", record_args("close_pryce=0.1"), "unknown feature 'close_pryce'"),
    ("nan importance", record_args("close_price=nan"), "finite"),
    ("infinite importance", record_args("close_price=inf"), "finite"),
    ("negative importance", record_args("close_price=-1"), ">= 0"),
    ("not a number", record_args("close_price=high"), "'high' is not a number"),
    ("unknown environment", record_args("close_price=0.1", env="prod"), "unknown environment"),
    (
        "correlation out of range",
        [*record_args("close_price=0.1"), "--correlation", "close_price=1.5"],
        "within [-1, 1]",
    ),
    (
        "unknown version",
        [*record_args("close_price=0.1"), "--feature-version", "close_price=3.0.0"],
        "no registered version 3.0.0",
    ),
    (
        "one unknown feature in a batch",
        record_args("close_price=0.1", "rsi_14d=0.2", "nope=0.3"),
        "unknown feature 'nope'",
    ),
    (
        "one bad value in a batch",
        [*record_args("close_price=0.1", "rsi_14d=0.2"), "--correlation", "rsi_14d=-2"],
        "rsi_14d",
    ),
    (
        "no features",
        ["usage", "record", "--model", "m", "--model-version", "1", "--env", "dev"],
        "--feature",
    ),
    ("missing model", ["usage", "record", "--feature", "close_price=1"], "--model"),
    ("duplicate feature", record_args("close_price=0.1", "close_price=0.2"), "given twice"),
]


@pytest.mark.parametrize("args,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_2_and_writes_nothing(project, args, message):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error:")
    for name in ("close_price", "rsi_14d"):
        assert history(name) == []


def test_bad_json_file(project, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    result = cli("usage", "record", "--from-json", str(path))
    assert result.exit_code == 2 and "invalid JSON" in result.stderr
    path.write_text(
        json.dumps(
            [
                {
                    "feature_name": "close_price",
                    "used_by_model": "m",
                    "model_version": "1",
                    "environment": "dev",
                },
                {
                    "feature_name": "close_price",
                    "used_by_model": "m",
                    "model_version": "1",
                    "environment": "dev",
                    "correlation_with_target": "NaN",
                },
            ]
        )
    )
    result = cli("usage", "record", "--from-json", str(path))
    assert result.exit_code == 2 and "must be a number" in result.stderr
    assert history("close_price") == []


def test_unregistered_feature_asks_for_apply(definitions_folder, store_env):
    for payload in usage_payloads():
        definitions_folder.write(payload)
    result = cli(*record_args("close_price=0.1"))
    assert result.exit_code == 2
    assert "featurestore apply" in result.stderr


@pytest.mark.parametrize(
    "command", [["lineage", "nope"], ["stats", "nope"], ["usage", "history", "nope"]]
)
def test_unknown_feature_in_read_commands(project, command):
    result = cli(*command)
    assert result.exit_code == 2
    assert "unknown feature 'nope'" in result.stderr


def test_subprocess_exit_codes(project, store_env):
    env = {**os.environ, **store_env}
    command = [str(Path(sys.executable).parent / "featurestore")]  # the installed script
    ok = subprocess.run(
        [*command, *record_args("close_price=0.3"), "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["feature_importance"] == 0.3
    bad = subprocess.run(
        [*command, *record_args("close_price=0.3"), "--correlation", "close_price=nan"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "finite" in bad.stderr


def test_one_feature_with_the_spec_field_names(project):
    result = cli(
        "usage",
        "record",
        "--used-by-model",
        "ranker",
        "--model-version",
        "2.3.0",
        "--environment",
        "staging",
        "--feature-name",
        "close_price",
        "--feature-importance",
        "0.25",
        "--correlation-with-target",
        "-0.5",
        "--execution-duration-ms",
        "12",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["used_by_model"] == "ranker" and record["environment"] == "staging"
    assert record["feature_importance"] == 0.25
    assert record["correlation_with_target"] == -0.5
    assert record["execution_duration_ms"] == 12


def test_one_feature_form_refuses_a_lonely_importance(project):
    result = cli(*record_args("close_price=0.1"), "--feature-importance", "0.2")
    assert result.exit_code == 2
    assert "--feature-name" in result.stderr
