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


# --- revision 0003: training_sets ------------------------------------------------------------


def _migrate_to(url: str, revision: str) -> None:
    """Run the registry's own migrations on ``url`` up to ``revision`` only."""
    from alembic import command
    from alembic.config import Config

    from featurestore_dagster.registry.migrate import MIGRATIONS

    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()


def _seed_0002_rows(url: str, *, with_training_set: bool) -> None:
    """Rows as a 0002 registry holds them; ``with_training_set``: the training_sets table as
    the models made it before 0003 existed, holding one manifest."""
    from datetime import UTC, datetime

    from featurestore_dagster.registry.models import TrainingSetRecord

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        conn.execute(
            metadata.tables["features"].insert(),
            [
                {
                    "feature_name": "close_price",
                    "status": "active",
                    "current_version": "1.0.0",
                    "feature_type": "raw",
                    "usage_count": 3,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        conn.execute(
            metadata.tables["materializations"].insert(),
            [
                {
                    "feature_name": "close_price",
                    "version": "1.0.0",
                    "status": "published",
                    "rows": 6,
                    "checks": [],
                    "snapshot_id": 7,
                    "created_at": now,
                }
            ],
        )
        if with_training_set:
            TrainingSetRecord.__table__.create(conn)
            conn.execute(
                TrainingSetRecord.__table__.insert(),
                [
                    {
                        "id": "ts-0002",
                        "created_at": now,
                        "spine_row_count": 2,
                        "spine_hash": "ab" * 32,
                        "snapshot_ids": [7],
                        "manifest": {"training_set_id": "ts-0002", "features": []},
                    }
                ],
            )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_registry_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with temporary_postgres_database("fs_mig3") as url:
        yield url


@pytest.mark.parametrize("with_training_set", [False, True], ids=["no_table", "table_with_rows"])
def test_registry_at_0002_upgrades_to_head_keeping_rows(empty_registry_url, with_training_set):
    from featurestore_dagster.registry.training_sets import (
        protected_snapshot_ids,
        training_set_manifest,
    )

    url = empty_registry_url
    _migrate_to(url, "0002")
    _seed_0002_rows(url, with_training_set=with_training_set)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert current_revision(conn) == "0002"
    engine.dispose()

    registry = Registry(url)  # first use upgrades in place
    (run,) = registry.materializations("close_price")
    assert run.rows == 6 and run.snapshot_id == 7
    manifest = training_set_manifest(registry.engine, "ts-0002")
    assert (manifest is not None) is with_training_set
    assert protected_snapshot_ids(registry.engine) == ({7} if with_training_set else set())
    dispose_engines()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD == "0003"
        assert conn.execute(text("SELECT usage_count FROM features")).scalar() == 3
    engine.dispose()
    assert _schema(url)["training_sets"] == _model_schema(url)["training_sets"]


def _schema(url: str) -> dict[str, dict]:
    """Per table: columns (name, generic type, nullable, primary key) and indexes."""
    from sqlmodel import SQLModel

    engine = create_engine(url)
    found = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in SQLModel.metadata.tables:
            if not inspector.has_table(table):
                continue
            primary = set(inspector.get_pk_constraint(table)["constrained_columns"])
            columns = {
                c["name"]: (
                    type(c["type"].as_generic()).__name__,
                    getattr(c["type"], "length", None),
                    c["nullable"],
                    c["name"] in primary,
                )
                for c in inspector.get_columns(table)
            }
            indexes = {
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            }
            uniques = {
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            }
            found[table] = {"columns": columns, "indexes": indexes, "uniques": uniques}
    engine.dispose()
    return found


def _model_schema(url: str) -> dict[str, dict]:
    """The schema ``SQLModel.metadata.create_all`` makes, in a scratch database of the same
    kind as ``url``."""
    import tempfile

    from sqlmodel import SQLModel

    if url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            scratch = f"sqlite:///{folder}/models.db"
            engine = create_engine(scratch)
            SQLModel.metadata.create_all(engine)
            engine.dispose()
            return _schema(scratch)
    with temporary_postgres_database("fs_models") as scratch:
        engine = create_engine(scratch)
        SQLModel.metadata.create_all(engine)
        engine.dispose()
        return _schema(scratch)


def test_fresh_registry_migrations_make_the_models_schema(empty_registry_url):
    """Alembic alone (no create_all) makes every table, column and index the models declare."""
    from featurestore_dagster.registry.migrate import upgrade_registry

    engine = create_engine(empty_registry_url)
    assert upgrade_registry(engine) == (None, HEAD)
    engine.dispose()
    migrated = _schema(empty_registry_url)
    expected = _model_schema(empty_registry_url)
    assert set(migrated) == set(expected)
    for table in expected:
        assert migrated[table] == expected[table], table
