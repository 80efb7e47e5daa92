"""The registry commands through the real CLI: plan, apply, bump, versions, rollback, lifecycle,
plus what ``show`` and ``check`` add. Exit codes: 0 ok, 1 found a failure, 2 bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import insert
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.registry import Registry
from featurestore_dagster.registry.models import UsageRecord, utcnow
from tests.conftest import REPO_ROOT, base_definition

runner = CliRunner()

VALUES_SQL = (
    "SELECT symbol, CAST(date AS DATE) AS date, close AS close_price FROM (VALUES"
    " ('a', '2024-01-02', 1.5), ('b', '2024-01-02', 2.5)) AS t(symbol, date, close)"
)


def child(name="double_price", **overrides):
    return base_definition(
        feature_name=name,
        feature_type="derived",
        sources=[],
        upstream_features=["close_price"],
        transformation={
            "code": f"SELECT symbol, date, close_price * 2 AS {name} FROM features.close_price"
        },
        **overrides,
    )


@pytest.fixture
def env(store_env, registry_url, monkeypatch):
    monkeypatch.setenv("FEATURESTORE_REGISTRY_URL", registry_url)
    return {**store_env, "FEATURESTORE_REGISTRY_URL": registry_url}


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def applied(definitions_folder, env, *payloads):
    for payload in payloads or (base_definition(),):
        definitions_folder.write(payload)
    result = run(env, "apply")
    assert result.exit_code == 0, result.output
    return result


# --- plan / apply ------------------------------------------------------------------------------


def test_plan_apply_flow(definitions_folder, env):
    definitions_folder.write(base_definition())
    plan = run(env, "plan")
    assert plan.exit_code == 0 and "+ close_price 1.0.0 (new)" in plan.stdout
    assert run(env, "plan", "--check").exit_code == 1
    data = json.loads(run(env, "plan", "--json").stdout)
    assert data[0]["feature_name"] == "close_price" and data[0]["change"] == "new"

    apply = run(env, "apply", "--json")
    assert apply.exit_code == 0
    [version] = json.loads(apply.stdout)
    assert {"feature_name", "version", "change_category", "created_by", "snapshot"} <= set(version)
    assert run(env, "plan", "--check").exit_code == 0
    assert "Everything is registered" in run(env, "plan").stdout
    assert "Nothing to register" in run(env, "apply").stdout


def test_plan_shows_a_readable_diff_and_the_impact(definitions_folder, env):
    applied(definitions_folder, env, base_definition(), child())
    definitions_folder.write(
        base_definition(
            description="Close",
            transformation={
                "code": "SELECT symbol, date,\n  close * 100 AS close_price\nFROM raw.prices"
            },
        )
    )
    result = run(env, "plan")
    out = result.stdout
    assert "~ close_price 1.0.0 -> 1.0.0  data, needs >= 1.1.0" in out
    assert "transformation.code (data)" in out
    assert "+  close * 100 AS close_price" in out
    assert "description (metadata): Daily close -> Close" in out
    assert "downstream affected: double_price" in out
    assert "refused" in out and "use version 1.1.0" in out
    assert run(env, "plan", "--check").exit_code == 1


def test_formatting_only_edits_are_no_change(definitions_folder, env):
    applied(definitions_folder, env)
    definitions_folder.write(
        base_definition(
            transformation={
                "code": "-- same query\nselect symbol, date,\n   close as close_price\nfrom raw.prices"
            }
        )
    )
    assert run(env, "plan", "--check").exit_code == 0


def test_apply_refuses_a_too_small_version_and_writes_nothing(definitions_folder, env):
    applied(definitions_folder, env)
    definitions_folder.write(base_definition(version="1.0.1", data_type="integer"))
    result = run(env, "apply")
    assert result.exit_code == 2
    assert "close_price" in result.stderr and "use version 2.0.0" in result.stderr
    assert "1.0.1 is too small" in result.stderr
    assert [
        v.version for v in Registry(env["FEATURESTORE_REGISTRY_URL"]).versions("close_price")
    ] == ["1.0.0"]


def test_apply_is_all_or_nothing(definitions_folder, env):
    applied(definitions_folder, env)
    definitions_folder.write(base_definition(version="1.0.0", description="edited"))
    definitions_folder.write(child())  # new and fine, but the batch has a refusal
    assert run(env, "apply").exit_code == 2
    assert "double_price" not in Registry(env["FEATURESTORE_REGISTRY_URL"]).registered_state()


# --- bump ------------------------------------------------------------------------------------


def test_bump_writes_the_required_version(definitions_folder, env):
    applied(definitions_folder, env)
    path = definitions_folder.write(base_definition(validation_rules=[]))
    result = run(env, "bump", "close_price")
    assert result.exit_code == 0, result.output
    assert "1.0.0 -> 1.1.0 (data change)" in result.stdout
    written = yaml.safe_load(path.read_text())
    assert written["version"] == "1.1.0"
    assert written["changelog"] == "Changed validation_rules"
    assert run(env, "apply").exit_code == 0


def test_bump_with_a_level_and_message(definitions_folder, env):
    applied(definitions_folder, env)
    path = definitions_folder.write(base_definition(description="new words"))
    result = run(env, "bump", "close_price", "--major", "-m", "Big release", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == "2.0.0"
    assert yaml.safe_load(path.read_text())["changelog"] == "Big release"


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--patch"], "smallest valid version is 1.1.0"),
        (["--patch", "--minor"], "at most one of"),
    ],
)
def test_refused_bumps_write_nothing(definitions_folder, env, args, phrase):
    applied(definitions_folder, env)
    path = definitions_folder.write(base_definition(validation_rules=[]))
    before = path.read_text()
    result = run(env, "bump", "close_price", *args)
    assert result.exit_code == 2 and phrase in result.stderr
    assert path.read_text() == before


def test_bump_with_nothing_to_bump(definitions_folder, env):
    applied(definitions_folder, env)
    result = run(env, "bump", "close_price")
    assert result.exit_code == 0 and "nothing to bump" in result.stdout


# --- versions / rollback -----------------------------------------------------------------------


def test_versions_and_rollback(definitions_folder, env):
    applied(definitions_folder, env)
    path = definitions_folder.write(base_definition(version="1.1.0", validation_rules=[]))
    assert run(env, "apply").exit_code == 0
    result = run(env, "rollback", "close_price", "--to", "1.0.0", "-m", "rules were needed")
    assert result.exit_code == 0, result.output
    assert "restored 1.0.0 as 1.2.0" in result.stdout
    assert yaml.safe_load(path.read_text())["validation_rules"][0]["rule_type"] == "range"

    versions = json.loads(run(env, "versions", "close_price", "--json").stdout)
    assert [v["version"] for v in versions] == ["1.2.0", "1.1.0", "1.0.0"]
    assert versions[0]["changelog"] == "Rollback to 1.0.0: rules were needed"
    assert [v["is_rolled_back"] for v in versions] == [False, True, False]
    assert versions[1]["rolled_back_at"] is not None
    table = run(env, "versions", "close_price").stdout
    assert "1.2.0" in table and "1.1.0" in table and "Rollback" in table


@pytest.mark.parametrize(
    "target,phrase",
    [("3.0.0", "no registered version 3.0.0 (registered: 1.0.0)"), ("3.0", "not a semantic")],
)
def test_rollback_to_an_unknown_version(definitions_folder, env, target, phrase):
    applied(definitions_folder, env)
    before = (definitions_folder.path / "close_price.yaml").read_text()
    result = run(env, "rollback", "close_price", "--to", target)
    assert result.exit_code == 2 and phrase in result.stderr
    assert (definitions_folder.path / "close_price.yaml").read_text() == before


def test_versions_of_an_unknown_feature(definitions_folder, env):
    applied(definitions_folder, env)
    result = run(env, "versions", "close_pryce")
    assert result.exit_code == 2 and "unknown feature 'close_pryce'" in result.stderr


# --- lifecycle -------------------------------------------------------------------------------


def test_lifecycle_commands(definitions_folder, env):
    applied(definitions_folder, env, base_definition(), child(status="draft"))
    result = run(env, "activate", "double_price")
    assert result.exit_code == 0 and "draft -> active (version 1.0.1)" in result.stdout
    refused = run(env, "deprecate", "close_price")
    assert refused.exit_code == 2 and "double_price" in refused.stderr
    again = run(env, "activate", "double_price")
    assert again.exit_code == 2 and "is active: cannot activate" in again.stderr
    archived = run(env, "archive", "double_price", "--json")
    assert archived.exit_code == 0 and json.loads(archived.stdout)["status"] == "archived"
    assert run(env, "deprecate", "close_price").exit_code == 0
    assert run(env, "plan", "--check").exit_code == 0


# --- bad input ---------------------------------------------------------------------------------


def test_invalid_version_in_a_file(definitions_folder, env, tmp_path):
    definitions_folder.write(base_definition(version="1.0"))
    result = run(env, "plan")
    assert result.exit_code == 2
    for text in ("close_price.yaml", "close_price", "version", "not a semantic version"):
        assert text in result.stderr


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://postgres@127.0.0.1:1/none", "sqlite:////proc/nope/x.db"]
)
def test_unreachable_registry(definitions_folder, store_env, url):
    definitions_folder.write(base_definition())
    result = runner.invoke(app, ["plan"], env={**store_env, "FEATURESTORE_REGISTRY_URL": url})
    assert result.exit_code == 2
    assert "registry" in result.stderr and "Traceback" not in result.output


# --- impact --------------------------------------------------------------------------------------


def _use(env, feature, model, days_ago=1, environment="production"):
    registry = Registry(env["FEATURESTORE_REGISTRY_URL"])
    with registry.engine.begin() as conn:
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "feature_name": feature,
                    "feature_version": "1.0.0",
                    "used_by_model": model,
                    "model_version": "7",
                    "environment": environment,
                    "usage_timestamp": utcnow() - timedelta(days=days_ago),
                }
            ],
        )


def test_breaking_change_under_production_models(definitions_folder, env):
    applied(definitions_folder, env, base_definition(), child())
    _use(env, "double_price", "ranker", days_ago=10)
    _use(env, "close_price", "notebook", environment="dev")
    definitions_folder.write(base_definition(version="2.0.0", entity_columns=["ticker"]))
    plan = run(env, "plan")
    assert "production models (last 90 days): ranker@7 (uses double_price)" in plan.stdout
    assert "notebook" not in plan.stdout
    refused = run(env, "apply")
    assert refused.exit_code == 2
    assert "ranker@7" in refused.stderr and "--allow-breaking" in refused.stderr
    assert run(env, "plan", "--window-days", "5", "--json").exit_code == 0
    assert (
        json.loads(run(env, "plan", "--window-days", "5", "--json").stdout)[0]["production_models"]
        == []
    )
    assert run(env, "apply", "--allow-breaking").exit_code == 0


def test_impact_window_from_pyproject(definitions_folder, env, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.featurestore]\nimpact_window_days = 5\n")
    monkeypatch.chdir(tmp_path)
    applied(definitions_folder, env)
    _use(env, "close_price", "ranker", days_ago=10)
    definitions_folder.write(base_definition(version="2.0.0", data_type="integer"))
    result = run(env, "apply")
    assert result.exit_code == 0, result.output


# --- show / check / materialization records ----------------------------------------------------


def test_materialize_records_runs_shown_by_show_and_check_records_none(
    definitions_folder, env, tmp_path
):
    definitions_folder.write(base_definition(sources=[], transformation={"code": VALUES_SQL}))
    junit = tmp_path / "junit.xml"
    check = run(env, "check", "--json", "--junit-xml", str(junit))
    assert check.exit_code == 1
    report = json.loads(check.stdout)
    assert report["unregistered"][0]["feature_name"] == "close_price"
    assert report["features"][0]["status"] == "checked" and not report["passed"]
    assert '<testsuite name="registry" tests="1" failures="1">' in junit.read_text()

    assert run(env, "apply").exit_code == 0
    assert run(env, "check").exit_code == 0
    # check builds and discards: no materialization recorded, nothing published.
    assert json.loads(run(env, "show", "close_price", "--json").stdout)["materializations"] == []
    assert run(env, "materialize").exit_code == 0
    assert run(env, "materialize").exit_code == 0
    shown = json.loads(run(env, "show", "close_price", "--json").stdout)
    assert shown["current_version"] == "1.0.0" and shown["version_count"] == 1
    runs = shown["materializations"]
    assert len(runs) == 2 and runs[0]["rows"] == 2 and runs[0]["status"] == "published"
    assert runs[0]["run_id"] and runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[0]["code_version"] == "1.0.0" and runs[0]["max_value"] == 2.5
    assert any(c["name"] == "schema" and c["passed"] for c in runs[0]["checks"])
    text = run(env, "show", "close_price").stdout
    assert "registry: version 1.0.0, 1 version(s) in history" in text and "last runs" in text


def test_code_versions_reach_dagster(definitions_folder, env):
    from featurestore_dagster.orchestration.definitions import code_location

    applied(definitions_folder, env)
    definitions_folder.write(base_definition(version="1.0.1", description="Only words"))
    assert run(env, "apply").exit_code == 0

    def code_version() -> str:
        specs = {spec.key.path[-1]: spec for spec in code_location().resolve_all_asset_specs()}
        return specs["close_price"].code_version

    assert code_version() == "1.0.0"  # metadata-only: nothing goes stale
    definitions_folder.write(base_definition(version="1.1.0", validation_rules=[]))
    assert run(env, "apply").exit_code == 0
    assert code_version() == "1.1.0"
    assert run(env, "rollback", "close_price", "--to", "1.0.1").exit_code == 0
    assert code_version() == "1.0.0"  # the data of 1.0.0 again


# --- start-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["plan"], ["versions", "close_price"], ["bump", "close_price"]]
)
def test_registry_commands_do_not_import_dagster(definitions_folder, store_env, command):
    definitions_folder.write(base_definition())
    script = textwrap.dedent(
        f"""
        import sys
        from featurestore_dagster.cli.app import app
        try:
            app({command!r}, standalone_mode=False)
        except SystemExit:
            pass
        print("DAGSTER" if any(m == "dagster" or m.startswith("dagster.") for m in sys.modules)
              else "CLEAN")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**__import__("os").environ, **store_env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "CLEAN", result.stdout + result.stderr
