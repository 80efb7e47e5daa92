"""The ``training_sets`` registry table: manifests stored whole, snapshot ids beside them for
retention; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlmodel import SQLModel

from featurestore_dagster.registry import training_sets as sql
from featurestore_dagster.registry.models import TrainingSetRecord


def _manifest(training_set_id: str, snapshots: list[int | None]) -> dict:
    return {
        "training_set_id": training_set_id,
        "created_at": "2026-12-01T10:00:00+00:00",
        "model": "m",
        "model_version": "1.0.0",
        "environment": "dev",
        "spine": {"row_count": 3, "content_hash": "ab" * 32},
        "features": [{"feature_name": f"f{i}", "snapshot_id": s} for i, s in enumerate(snapshots)],
    }


def test_manifests_and_protected_snapshots(registry_url):
    engine = create_engine(registry_url)
    try:
        # Before the table exists (a registry of an older release): nothing to protect.
        assert sql.protected_snapshot_ids(engine) == set()
        SQLModel.metadata.create_all(engine, tables=[TrainingSetRecord.__table__])
        with engine.begin() as conn:
            sql.insert_training_set(conn, _manifest("ts_a", [4, 9, None]), "tester")
            sql.insert_training_set(conn, _manifest("ts_b", [9, 12]), None)
        assert sql.protected_snapshot_ids(engine) == {4, 9, 12}
        with engine.connect() as conn:
            assert sql.protected_snapshot_ids(conn) == {4, 9, 12}
        assert sql.training_set_manifest(engine, "ts_a") == _manifest("ts_a", [4, 9, None])
        assert sql.training_set_manifest(engine, "ts_missing") is None
    finally:
        engine.dispose()
