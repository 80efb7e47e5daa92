"""Lake settings: defaults, the retired DuckDB-file settings, unusable catalogs and paths."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.config import Settings
from featurestore_dagster.errors import ConfigError
from tests.conftest import DefinitionsFolder, base_definition

runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "FEATURESTORE_LAKE_CATALOG",
        "FEATURESTORE_LAKE_DATA",
        "FEATURESTORE_DUCKDB_PATH",
        "FEATURESTORE_REGISTRY_URL",
        "FEATURESTORE_DEFINITIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.featurestore]\n")
    return tmp_path


def test_defaults_live_under_dot_featurestore(clean_env):
    settings = Settings.load(start=clean_env)
    root = clean_env.resolve()
    assert settings.lake_catalog == f"sqlite:{root / '.featurestore' / 'lake.sqlite'}"
    assert settings.lake_data == root / ".featurestore" / "lake"
    assert settings.attach == ()


@pytest.mark.parametrize(
    "value,expected",
    [
        ("postgresql://u:secret@db:5432/lake", "postgresql://u:secret@db:5432/lake"),
        ("postgresql+psycopg://u@db/lake", "postgresql+psycopg://u@db/lake"),
        ("ducklake:sqlite:cat.sqlite", "sqlite:{root}/cat.sqlite"),
        ("sqlite:///abs/cat.sqlite", "sqlite:/abs/cat.sqlite"),
    ],
)
def test_catalog_spellings(clean_env, monkeypatch, value, expected):
    monkeypatch.setenv("FEATURESTORE_LAKE_CATALOG", value)
    catalog = Settings.load(start=clean_env).lake_catalog
    assert catalog == expected.format(root=clean_env.resolve())


def test_postgres_urls_become_ducklake_targets():
    from featurestore_dagster.storage.lake import display_catalog, ducklake_target

    assert ducklake_target("postgresql+psycopg://u@h/db") == "postgres:postgresql://u@h/db"
    assert ducklake_target("postgres:dbname=x host=h") == "postgres:dbname=x host=h"
    assert display_catalog("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


@pytest.mark.parametrize(
    "toml,env,what",
    [
        ("", {"FEATURESTORE_DUCKDB_PATH": "x.duckdb"}, "FEATURESTORE_DUCKDB_PATH"),
        ('duckdb_path = "x.duckdb"', {}, "duckdb_path"),
        ('duckdb = "x.duckdb"', {}, "duckdb"),
    ],
)
def test_retired_duckdb_settings_are_refused(clean_env, monkeypatch, toml, env, what):
    (clean_env / "pyproject.toml").write_text(f"[tool.featurestore]\n{toml}\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=what) as caught:
        Settings.load(start=clean_env)
    assert "FEATURESTORE_LAKE_CATALOG" in str(caught.value)
    assert "FEATURESTORE_LAKE_DATA" in str(caught.value)
    assert caught.value.exit_code == 2


def test_retired_duckdb_option_exits_2(store_env):
    result = runner.invoke(app, ["--duckdb", "x.duckdb", "list"], env=store_env)
    assert result.exit_code == 2
    assert "FEATURESTORE_LAKE_CATALOG" in result.stderr and "--duckdb" in result.stderr
    result = runner.invoke(
        app, ["list"], env={**store_env, "FEATURESTORE_DUCKDB_PATH": "features.duckdb"}
    )
    assert result.exit_code == 2 and "FEATURESTORE_LAKE_DATA" in result.stderr


@pytest.mark.parametrize(
    "toml,message",
    [
        ('attach = "x.duckdb"', "name = "),
        ('attach = {Bad-Name = "x.duckdb"}', "cannot name an attached catalog"),
        ('attach = {features = "x.duckdb"}', "cannot name an attached catalog"),
        ('lake_catalog = "mysql://x"', "neither sqlite:PATH nor a PostgreSQL URL"),
    ],
)
def test_bad_lake_settings(clean_env, toml, message):
    (clean_env / "pyproject.toml").write_text(f"[tool.featurestore]\n{toml}\n")
    with pytest.raises(ConfigError, match=message):
        Settings.load(start=clean_env)


def _materialize(env, tmp_path):
    DefinitionsFolder(tmp_path).write(
        base_definition(
            sources=[],
            transformation={
                "code": "SELECT 'A' AS symbol, DATE '2024-01-01' AS date, 1.0 AS close_price"
            },
        )
    )
    return runner.invoke(app, ["materialize"], env=env)


def test_unreachable_catalog_exits_2(store_env, tmp_path):
    env = {**store_env, "FEATURESTORE_LAKE_CATALOG": "postgresql://nobody@127.0.0.1:1/none"}
    result = _materialize(env, tmp_path)
    assert result.exit_code == 2, result.output
    assert "cannot reach the lake catalog postgresql://nobody@127.0.0.1:1/none" in result.stderr
    assert "Traceback" not in result.output


def test_unwritable_data_path_exits_2(store_env, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    env = {**store_env, "FEATURESTORE_LAKE_DATA": str(blocker / "lake")}
    result = _materialize(env, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"cannot create the lake folder {blocker / 'lake'}" in result.stderr
    assert not (tmp_path / "lake.sqlite").exists()
