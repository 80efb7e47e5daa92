"""Errors told precisely and help a user can read, through the real CLI."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import REPO_ROOT, base_definition

runner = CliRunner()


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def test_an_hour_out_of_range_says_so(definitions_folder, store_env):
    definitions_folder.write(base_definition(schedule="0 25 * * 1-5"))
    result = run(store_env, "plan")
    assert result.exit_code == 2
    assert "field 'schedule'" in result.stderr
    assert "hour 25 is out of range (0-23)" in result.stderr


@pytest.mark.parametrize(
    "args,phrase",
    [
        (
            ["--feature-type", "bogus"],
            "unknown feature_type 'bogus': use one of technical_indicator",
        ),
        (["--status", "nope"], "unknown status 'nope': use one of draft, active"),
    ],
)
def test_unknown_list_filters_are_exit_2(definitions_folder, store_env, args, phrase):
    definitions_folder.write(base_definition())
    result = run(store_env, "list", *args)
    assert result.exit_code == 2
    assert phrase in result.stderr


@pytest.mark.parametrize("home", ["/nonexistent/dagster/home", "relative/home"])
def test_a_bad_dagster_home_is_one_message(definitions_folder, store_env, home):
    definitions_folder.write(base_definition(sources=[], transformation={"code": VALUES}))
    result = run({**store_env, "DAGSTER_HOME": home}, "materialize")
    assert result.exit_code == 2
    assert f"DAGSTER_HOME={home} cannot be used" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


VALUES = (
    "SELECT symbol, CAST(date AS DATE) AS date, close AS close_price FROM (VALUES"
    " ('a', '2024-01-02', 1.5)) AS t(symbol, date, close)"
)


# --- help and README ----------------------------------------------------------------------------


def _commands(command, path=()):
    yield list(path)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize(
    "path", list(_commands(typer.main.get_command(app))), ids=lambda p: " ".join(p) or "top"
)
def test_help_is_plain_documentation(path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for bad in ("``", "SPEC", "DESIGN"):
        assert bad not in result.output, result.output


def test_env_hints_survive_in_help():
    output = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "Definitions folder [env FEATURESTORE_DEFINITIONS]." in output
    assert "Registry URL [env FEATURESTORE_REGISTRY_URL]." in output


def test_the_readme_points_only_at_what_the_repository_holds():
    text = (REPO_ROOT / "README.md").read_text()
    assert "SPEC" not in text and "DESIGN" not in text
    assert not re.search(r"(?<!`)``(?!`)", text)  # RST literals; code fences are fine


# --- output without a terminal ------------------------------------------------------------------


def test_list_never_cuts_names(definitions_folder, store_env):
    long_name = "stock_relative_strength_versus_sector_median_260d"
    definitions_folder.write(
        base_definition(
            feature_name=long_name,
            transformation={"code": f"SELECT symbol, date, close AS {long_name} FROM raw.prices"},
        )
    )
    result = run({**store_env, "COLUMNS": "80"}, "list")
    assert result.exit_code == 0
    assert long_name in result.stdout
    assert not result.stdout.startswith("\n")


# --- errors in SQL and builds, told precisely ---------------------------------------------------

BROKEN_YAML = """\
feature_name: close_price
version: 1.0.0
feature_type: raw
data_type: float
entity_columns: [symbol]
timestamp_column: date
sources: [raw.prices]
transformation:
  transformation_type: sql
  code: |
    SELECT symbol,
           date,
           close AS close_price
    FROM raw.prices
    WHERE (
"""


def test_a_sql_syntax_error_names_the_line_of_the_yaml_file(definitions_folder, store_env):
    path = definitions_folder.write_text("close_price.yaml", BROKEN_YAML)
    result = run(store_env, "plan")
    assert result.exit_code == 2
    assert f"{path}, feature 'close_price', field 'transformation.code'" in result.stderr
    assert "SQL does not parse at line 15, column 11 of close_price.yaml" in result.stderr
    assert "Line 5" not in result.stderr  # not a line counted inside the SQL block


def test_a_runtime_error_names_the_file_and_the_feature(definitions_folder, store_env):
    path = definitions_folder.write(
        base_definition(
            sources=[],
            transformation={
                "code": "SELECT symbol, CAST(date AS DATE) AS date, CAST(close AS DOUBLE) AS"
                " close_price FROM (VALUES ('a', '2024-01-02', 'n/a')) AS t(symbol, date, close)"
            },
        )
    )
    result = run(store_env, "materialize")
    assert result.exit_code == 1
    assert f"close_price ({path}): Conversion Error" in " ".join(result.stderr.split())


def test_a_rejected_build_says_expected_and_found_and_skips_what_could_not_run(
    definitions_folder, store_env
):
    path = definitions_folder.write(
        base_definition(
            sources=[],
            transformation={
                "code": "SELECT symbol, CAST(date AS DATE) AS date, close AS price FROM (VALUES"
                " ('a', '2024-01-02', 1.5)) AS t(symbol, date, close)"
            },
        )
    )
    result = run(store_env, "materialize")
    assert result.exit_code == 1
    stderr = " ".join(result.stderr.split())
    assert (
        f"close_price ({path}): check schema failed: missing column(s): close_price;"
        " unexpected column(s): price (expected columns symbol, date, close_price; found symbol,"
        " date, price)"
    ) in stderr
    assert f"close_price ({path}): check range skipped:" in stderr
    assert "1 skipped: range" in " ".join(result.stdout.split())
    assert "failed: schema, range" not in " ".join(result.stdout.split())


# --- start-up -----------------------------------------------------------------------------------


def test_uv_run_prints_no_bytecode_line():
    import shutil
    import subprocess

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    result = subprocess.run(
        [uv, "run", "--frozen", "python", "-c", "pass"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Bytecode compiled" not in result.stderr


def test_modules_are_cached_even_where_bytecode_writing_is_off():
    import os
    import subprocess
    import sys

    script = "import sys, featurestore_dagster; print(sys.dont_write_bytecode)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "False", result.stderr


def test_output_without_a_terminal_starts_with_text(definitions_folder, store_env):
    import os
    import subprocess
    import sys

    definitions_folder.write(base_definition(sources=[], transformation={"code": VALUES}))
    result = subprocess.run(
        [sys.executable, "-m", "featurestore_dagster.cli", "materialize"],
        env={**os.environ, **store_env},
        cwd=definitions_folder.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout and not result.stdout.startswith("\n")
    assert result.stderr and not result.stderr.startswith("\n"), repr(result.stderr[:80])


def test_junit_reports_checks_that_could_not_run_as_skipped(definitions_folder, store_env):
    from featurestore_dagster.config import Settings
    from featurestore_dagster.definitions.graph import FeatureGraph
    from featurestore_dagster.orchestration.runner import run_build, write_junit

    definitions_folder.write(
        base_definition(
            sources=[],
            transformation={
                "code": "SELECT symbol, CAST(date AS DATE) AS date, close AS price FROM (VALUES"
                " ('a', '2024-01-02', 1.5)) AS t(symbol, date, close)"
            },
        )
    )
    builds = run_build(FeatureGraph.load(definitions_folder.path), Settings.load())
    junit = definitions_folder.root / "junit.xml"
    write_junit(builds, junit)
    xml = junit.read_text()
    assert '<testcase classname="featurestore.close_price" name="range"><skipped' in xml
    assert '<testcase classname="featurestore.close_price" name="schema"><failure' in xml
