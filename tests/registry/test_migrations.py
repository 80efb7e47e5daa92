"""Registry migrations: a registry written by the first release upgrades in place, rows kept,
on SQLite (the file it wrote) and on PostgreSQL (the same schema and rows moved there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import DateTime, MetaData, create_engine, inspect, select, text
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.registry import Registry, dispose_engines
from featurestore_dagster.registry.migrate import HEAD, current_revision
from tests.conftest import DefinitionsFolder, base_definition, temporary_postgres_database

FIXTURE = Path(__file__).parent / "fixtures" / "registry_wave1.db"
TABLES = ("features", "feature_versions", "feature_events", "materializations", "feature_usage")


def rows_of(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).fetchall()), key=str)
                for t in TABLES
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def wave1_registry(request, tmp_path):
    """A URL of a registry in the first release's schema, holding its rows."""
    copy = tmp_path / "registry.db"
    shutil.copy(FIXTURE, copy)
    sqlite_url = f"sqlite:///{copy}"
    if request.param == "sqlite":
        yield sqlite_url
        return
    with temporary_postgres_database("fs_migrate") as url:
        source = create_engine(sqlite_url)
        target = create_engine(url)
        metadata = MetaData()
        metadata.reflect(source)
        for table in metadata.tables.values():  # SQLite's type names -> the generic types
            for column in table.columns:
                column.type = column.type.as_generic()
                if isinstance(column.type, DateTime):
                    column.type = DateTime(timezone=True)  # as the first release declared
        metadata.create_all(target)
        with source.connect() as read, target.begin() as write:
            for table in metadata.sorted_tables:
                data = [dict(r._mapping) for r in read.execute(select(table))]
                if data:
                    write.execute(table.insert(), data)
        source.dispose()
        target.dispose()
        yield url


def test_first_use_upgrades_in_place_keeping_rows(wave1_registry):
    before = rows_of(wave1_registry)
    engine = create_engine(wave1_registry)
    with engine.connect() as conn:
        assert current_revision(conn) == "0001"
    engine.dispose()

    registry = Registry(wave1_registry)  # first use
    assert [v.version for v in registry.versions("close_price")][:2] in (
        ["1.0.1", "1.0.0"],
        ["1.0.0", "1.0.1"],
    )
    (run,) = registry.materializations("close_price")
    assert run.rows == 6 and run.snapshot_id is None and run.run_id == "r1"
    dispose_engines()

    after = rows_of(wave1_registry)
    for table in TABLES:
        assert len(after[table]) == len(before[table]), table
    # Every old column keeps its values; materializations gained snapshot_id (NULL).
    assert [r[:16] for r in after["materializations"]] == [
        r[:16] for r in before["materializations"]
    ]
    engine = create_engine(wave1_registry)
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD
        columns = {c["name"] for c in inspect(conn).get_columns("materializations")}
    engine.dispose()
    assert "snapshot_id" in columns
    Registry(wave1_registry)  # a second use is a no-op
    dispose_engines()


def test_migrate_command_upgrades_and_reports(tmp_path, store_env):
    copy = tmp_path / "registry.db"
    shutil.copy(FIXTURE, copy)
    env = {**store_env, "FEATURESTORE_REGISTRY_URL": f"sqlite:///{copy}"}
    DefinitionsFolder(tmp_path).write(base_definition())
    runner = CliRunner()
    result = runner.invoke(app, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert f"upgraded from 0001 to revision {HEAD}" in result.stdout
    result = runner.invoke(app, ["migrate", "--json"], env=env)
    assert result.exit_code == 0 and f'"to": "{HEAD}"' in result.stdout
    assert len(rows_of(f"sqlite:///{copy}")["feature_usage"]) == 1


def test_fresh_registry_is_created_at_head(registry_url):
    Registry(registry_url)
    engine = create_engine(registry_url)
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    assert set(TABLES) <= names
