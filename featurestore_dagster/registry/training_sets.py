"""Training-set manifests and the reads that resolve a feature request, in SQL.

Functions take a SQLAlchemy ``Connection`` (or an ``Engine``) and return plain data; the
consumer code (``consumers/``) decides what they mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, inspect, select

from featurestore_dagster.registry.models import (
    FeatureVersionRecord,
    MaterializationRecord,
    TrainingSetRecord,
    as_utc,
)

TRAINING_SETS = TrainingSetRecord.__table__
MATERIALIZATIONS = MaterializationRecord.__table__
VERSIONS = FeatureVersionRecord.__table__


@dataclass(frozen=True)
class Publish:
    """One published build of a feature: which version, which data, which lake snapshot."""

    feature_name: str
    version: str
    data_fingerprint: str | None
    snapshot_id: int | None
    created_at: datetime | None


def publishes(conn: Connection, names: Iterable[str]) -> dict[str, list[Publish]]:
    """Published builds of ``names``, newest first."""
    columns = [
        MATERIALIZATIONS.c.feature_name,
        MATERIALIZATIONS.c.version,
        MATERIALIZATIONS.c.data_fingerprint,
        MATERIALIZATIONS.c.created_at,
        MATERIALIZATIONS.c.id,
    ]
    snapshot = MATERIALIZATIONS.c.get("snapshot_id")
    if snapshot is not None:
        columns.append(snapshot)
    query = (
        select(*columns)
        .where(MATERIALIZATIONS.c.feature_name.in_(sorted(set(names))))
        .where(MATERIALIZATIONS.c.status == "published")
        .order_by(MATERIALIZATIONS.c.created_at.desc(), MATERIALIZATIONS.c.id.desc())
    )
    found: dict[str, list[Publish]] = {}
    for row in conn.execute(query):
        mapping = row._mapping
        found.setdefault(row.feature_name, []).append(
            Publish(
                row.feature_name,
                row.version,
                row.data_fingerprint,
                mapping.get("snapshot_id"),
                as_utc(row.created_at),
            )
        )
    return found


def version_snapshots(conn: Connection, names: Iterable[str]) -> dict[str, dict[str, dict]]:
    """Feature -> registered version -> ``{"snapshot": ..., "data_fingerprint": ...}``."""
    query = select(
        VERSIONS.c.feature_name,
        VERSIONS.c.version,
        VERSIONS.c.snapshot,
        VERSIONS.c.data_fingerprint,
    ).where(VERSIONS.c.feature_name.in_(sorted(set(names))))
    found: dict[str, dict[str, dict]] = {}
    for row in conn.execute(query):
        found.setdefault(row.feature_name, {})[row.version] = {
            "snapshot": row.snapshot,
            "data_fingerprint": row.data_fingerprint,
        }
    return found


def insert_training_set(conn: Connection, manifest: dict[str, Any], created_by: str | None) -> None:
    """Store one manifest (in the caller's transaction)."""
    snapshots = sorted(
        {f["snapshot_id"] for f in manifest["features"] if f.get("snapshot_id") is not None}
    )
    conn.execute(
        TRAINING_SETS.insert().values(
            id=manifest["training_set_id"],
            created_at=datetime.fromisoformat(manifest["created_at"]),
            created_by=created_by,
            used_by_model=manifest.get("model"),
            model_version=manifest.get("model_version"),
            environment=manifest.get("environment"),
            spine_row_count=manifest["spine"]["row_count"],
            spine_hash=manifest["spine"]["content_hash"],
            snapshot_ids=snapshots,
            manifest=manifest,
        )
    )


def training_set_manifest(engine: Engine, training_set_id: str) -> dict[str, Any] | None:
    """The stored manifest of ``training_set_id`` (None when there is none)."""
    query = select(TRAINING_SETS.c.manifest).where(TRAINING_SETS.c.id == training_set_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row.manifest) if row is not None else None


def protected_snapshot_ids(bind: Engine | Connection) -> set[int]:
    """Every lake snapshot a stored manifest references (``gc`` must keep them); an empty
    set when the registry has no ``training_sets`` table yet."""
    if not inspect(bind).has_table(TRAINING_SETS.name):
        return set()
    query = select(TRAINING_SETS.c.snapshot_ids)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = list(conn.execute(query))
    else:
        rows = list(bind.execute(query))
    return {int(s) for row in rows for s in (row.snapshot_ids or [])}
