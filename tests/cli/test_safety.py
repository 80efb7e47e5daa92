"""Nothing destroyed by mistake: the project root, a wrong or empty definitions folder, removed
definition files, and the breaking_changes flag, through the real CLI and a real registry."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.registry import Registry
from tests.conftest import base_definition

runner = CliRunner()

# Every command that reads definitions or the registry, with the arguments it needs.
COMMANDS = [
    ["plan"],
    ["plan", "--check"],
    ["apply"],
    ["apply", "--archive-removed"],
    ["list"],
    ["show", "close_price"],
    ["versions", "close_price"],
    ["bump", "close_price"],
    ["rollback", "close_price", "--to", "1.0.0"],
    ["lineage", "close_price"],
    ["stats", "close_price"],
    ["deprecate", "close_price"],
    ["archive", "close_price"],
    ["materialize"],
    ["check"],
]


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def double(name="double_price"):
    return base_definition(
        feature_name=name,
        feature_type="derived",
        sources=[],
        upstream_features=["close_price"],
        transformation={
            "code": f"SELECT symbol, date, close_price * 2 AS {name} FROM features.close_price"
        },
    )


def statuses(env) -> dict[str, str]:
    rows = Registry(env["FEATURESTORE_REGISTRY_URL"]).feature_rows()
    return {name: row["status"] for name, row in rows.items()}


# --- a wrong or empty definitions folder ----------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_folder_is_exit_2_and_creates_no_registry(tmp_path, store_env, command):
    missing = tmp_path / "wrong" / "path"
    result = run(store_env, "--definitions", str(missing), *command)
    assert result.exit_code == 2, result.output
    assert f"definitions folder {missing} does not exist" in result.stderr
    assert "[tool.featurestore] definitions" in " ".join(result.stderr.split())
    assert not (tmp_path / "registry.db").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_empty_folder_never_archives_live_features(
    definitions_folder, store_env, command, tmp_path
):
    definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    (definitions_folder.path / "close_price.yaml").unlink()
    result = run(store_env, *command)
    assert result.exit_code == 2, result.output
    assert "holds no definitions, but the registry has 1 live feature(s) (close_price)" in (
        result.stderr
    )
    assert statuses(store_env) == {"close_price": "active"}


def test_an_empty_folder_with_an_empty_registry_is_fine(definitions_folder, store_env):
    assert run(store_env, "plan").exit_code == 0
    assert run(store_env, "list", "--json").stdout.strip() == "[]"


def test_the_python_api_refuses_a_missing_folder_too(tmp_path, store_env):
    from featurestore_dagster.errors import ConfigError
    from featurestore_dagster.store import FeatureStore

    store = FeatureStore(definitions_path=tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist"):
        store.apply()
    assert not (tmp_path / "registry.db").exists()


# --- removed definition files -----------------------------------------------------------------


def test_removed_files_are_archived_only_with_archive_removed(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    definitions_folder.write(double())
    definitions_folder.write(double("triple_price"))
    assert run(store_env, "apply").exit_code == 0
    (definitions_folder.path / "double_price.yaml").unlink()
    (definitions_folder.path / "triple_price.yaml").unlink()

    plan = run(store_env, "plan")
    assert "apply --archive-removed" in plan.stdout

    kept = run(store_env, "apply")
    assert kept.exit_code == 0
    assert "Nothing to register." in kept.stdout
    assert "not archived: double_price, triple_price" in kept.stderr
    assert statuses(store_env)["double_price"] == "active"

    archived = run(store_env, "apply", "--archive-removed")
    assert archived.exit_code == 0, archived.output
    assert "archived double_price" in archived.stdout
    assert "archived triple_price" in archived.stdout
    assert "2 feature(s) archived" in archived.stdout
    assert statuses(store_env) == {
        "close_price": "active",
        "double_price": "archived",
        "triple_price": "archived",
    }


# --- the project root ---------------------------------------------------------------------------


@pytest.fixture
def bare_env(tmp_path, monkeypatch):
    """No FEATURESTORE_* settings: the project is found from the working directory."""
    for name in (
        "FEATURESTORE_DEFINITIONS",
        "FEATURESTORE_DUCKDB_PATH",
        "FEATURESTORE_REGISTRY_URL",
        "FEATURESTORE_LAKE_CATALOG",
        "FEATURESTORE_LAKE_DATA",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEATURESTORE_BOOTSTRAP", "")
    return {"FEATURESTORE_BOOTSTRAP": ""}


def test_commands_find_the_project_root_from_a_subdirectory(tmp_path, bare_env, monkeypatch):
    project = tmp_path / "project"
    (project / "feature_definitions").mkdir(parents=True)
    (project / "feature_definitions" / "close_price.yaml").write_text(
        yaml.safe_dump(base_definition())
    )
    (project / "pyproject.toml").write_text("[tool.featurestore]\n")
    deep = project / "notebooks" / "week1"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    result = run(bare_env, "apply")
    assert result.exit_code == 0, result.output
    assert (project / ".featurestore" / "registry.db").exists()
    assert not (deep / ".featurestore").exists()
    assert json.loads(run(bare_env, "list", "--json").stdout)[0]["registered"] is True


def test_a_feature_definitions_folder_marks_the_root_and_other_pyprojects_do_not(
    tmp_path, bare_env, monkeypatch
):
    (tmp_path / "feature_definitions").mkdir()
    (tmp_path / "feature_definitions" / "close_price.yaml").write_text(
        yaml.safe_dump(base_definition())
    )
    library = tmp_path / "libs" / "helpers"
    library.mkdir(parents=True)
    (library / "pyproject.toml").write_text("[project]\nname = 'helpers'\n")
    monkeypatch.chdir(library)
    assert run(bare_env, "plan").exit_code == 0
    assert (tmp_path / ".featurestore").is_dir()
    assert not (library / ".featurestore").exists()


@pytest.mark.parametrize("command", [["plan"], ["list"], ["apply"], ["materialize"]], ids=" ".join)
def test_outside_any_project_nothing_is_created(tmp_path, bare_env, monkeypatch, command):
    outside = tmp_path / "somewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    result = run(bare_env, *command)
    assert result.exit_code == 2, result.output
    assert "not inside a featurestore project" in result.stderr
    assert "a pyproject.toml with a [tool.featurestore] table" in " ".join(result.stderr.split())
    assert list(outside.iterdir()) == []


# --- breaking_changes describes the version it sits on ------------------------------------------


def test_bump_resets_the_breaking_flag_for_the_next_version(definitions_folder, store_env):
    path = definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(base_definition(data_type="integer"))
    assert run(store_env, "bump", "close_price").exit_code == 0
    written = yaml.safe_load(path.read_text())
    assert (written["version"], written["breaking_changes"]) == ("2.0.0", True)
    assert run(store_env, "apply").exit_code == 0

    # A metadata edit later: bump writes false, the edit stays a patch, the version not breaking.
    written["description"] = "Daily close, in cents"
    path.write_text(yaml.safe_dump(written, sort_keys=False))
    plan = json.loads(run(store_env, "plan", "--json").stdout)[0]
    assert (plan["category"], plan["minimum_version"]) == ("metadata", "2.0.1")
    assert run(store_env, "bump", "close_price").exit_code == 0
    written = yaml.safe_load(path.read_text())
    assert (written["version"], written["breaking_changes"]) == ("2.0.1", False)
    assert run(store_env, "apply").exit_code == 0
    latest = json.loads(run(store_env, "versions", "close_price", "--json").stdout)
    assert [(v["version"], v["breaking_changes"]) for v in latest] == [
        ("2.0.1", False),
        ("2.0.0", True),
        ("1.0.0", False),
    ]


def test_a_stale_true_flag_does_not_make_a_metadata_edit_breaking(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(base_definition(version="2.0.0", breaking_changes=True))
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(
        base_definition(version="2.0.1", breaking_changes=True, description="edited")
    )
    plan = json.loads(run(store_env, "plan", "--json").stdout)[0]
    assert (plan["category"], plan["ok"]) == ("metadata", True)
    assert run(store_env, "apply").exit_code == 0
    latest = json.loads(run(store_env, "versions", "close_price", "--json").stdout)[0]
    assert (latest["version"], latest["breaking_changes"]) == ("2.0.1", False)


def test_plan_explains_a_flag_set_with_nothing_changed(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(base_definition(breaking_changes=True))
    plan = run(store_env, "plan")
    assert "only breaking_changes changed" in plan.stdout
    assert "featurestore bump close_price" in plan.stdout
    refused = run(store_env, "apply")
    assert refused.exit_code == 2
    assert "only breaking_changes changed" in refused.stderr


def test_rollback_writes_false_unless_the_change_is_breaking(definitions_folder, store_env):
    path = definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(
        base_definition(version="2.0.0", breaking_changes=True, validation_rules=[])
    )
    assert run(store_env, "apply").exit_code == 0
    result = run(store_env, "rollback", "close_price", "--to", "1.0.0", "--json")
    assert result.exit_code == 0, result.output
    restored = json.loads(result.stdout)
    assert (restored["change_category"], restored["breaking_changes"]) == ("data", False)
    assert yaml.safe_load(path.read_text())["breaking_changes"] is False


def test_a_postgres_url_gets_a_hint(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    result = run(store_env, "--registry-url", "postgres://me@127.0.0.1/test", "plan")
    assert result.exit_code == 2
    assert "use a postgresql+psycopg:// URL (postgresql+psycopg://me@127.0.0.1/test)" in (
        result.stderr
    )


# --- lifecycle warnings ---------------------------------------------------------------------------


@pytest.mark.parametrize("operation,done", [("deprecate", "deprecated"), ("archive", "archived")])
def test_deprecate_and_archive_name_the_production_models(
    definitions_folder, store_env, operation, done
):
    from datetime import timedelta

    from sqlalchemy import insert

    from featurestore_dagster.registry.models import UsageRecord, utcnow

    definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    registry = Registry(store_env["FEATURESTORE_REGISTRY_URL"])
    with registry.engine.begin() as conn:
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "feature_name": "close_price",
                    "feature_version": "1.0.0",
                    "used_by_model": model,
                    "model_version": "7",
                    "environment": environment,
                    "usage_timestamp": utcnow() - timedelta(days=2),
                }
                for model, environment in (("ranker", "production"), ("notebook", "dev"))
            ],
        )
    result = run(store_env, operation, "close_price")
    assert result.exit_code == 0, result.output
    assert (
        f"warning: close_price is {done} but production model(s) ranker@7 used it within the"
        " last 90 days"
    ) in " ".join(result.stderr.split())
    assert "notebook" not in result.stderr


def test_a_checked_out_older_file_says_what_to_run(definitions_folder, store_env):
    path = definitions_folder.write(base_definition())
    original = path.read_text()
    assert run(store_env, "apply").exit_code == 0
    definitions_folder.write(base_definition(version="1.1.0", validation_rules=[]))
    assert run(store_env, "apply").exit_code == 0
    path.write_text(original)  # `git checkout` of the file as it was at 1.0.0

    plan = " ".join(run(store_env, "plan").stdout.split())
    assert "Fix the versions first (`featurestore bump NAME` for close_price)" in plan
    refused = run(store_env, "apply")
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "version 1.0.0 is too small: the registered version is already 1.1.0" in message
    assert "run `featurestore bump close_price` (it writes version 1.2.0)" in message
    assert "`featurestore rollback close_price --to 1.0.0`" in message
