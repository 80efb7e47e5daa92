"""SQLModel tables of the registry (SQLite file by default, PostgreSQL by URL).

Times are stored as UTC. SQLite drops the zone, so readers treat naive values as UTC
(``as_utc``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetime from what the database returned (SQLite returns naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(index: bool = False, nullable: bool = False) -> Any:
    return Field(
        default=None if nullable else None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


class FeatureRecord(SQLModel, table=True):
    """Registered state of one feature (one row per feature name)."""

    __tablename__ = "features"

    feature_name: str = Field(primary_key=True, max_length=63)
    status: str = Field(max_length=16)
    current_version: str = Field(max_length=64)
    feature_type: str = Field(max_length=32)
    owner: str | None = Field(default=None, max_length=320)
    definition_file: str | None = None
    # Incremented in SQL (UPDATE ... SET usage_count = usage_count + n), never read-modify-write.
    usage_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_used_at: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    updated_at: datetime = _time()
    deprecated_at: datetime | None = _time(nullable=True)
    archived_at: datetime | None = _time(nullable=True)


class FeatureVersionRecord(SQLModel, table=True):
    """One registered version (immutable once written, but for the rollback marks)."""

    __tablename__ = "feature_versions"
    __table_args__ = (
        UniqueConstraint("feature_name", "version", name="uq_feature_version"),
        Index("ix_feature_versions_order", "feature_name", "major", "minor", "patch"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feature_name: str = Field(foreign_key="features.feature_name", max_length=63, index=True)
    version: str = Field(max_length=64)
    major: int
    minor: int
    patch: int
    change_category: str = Field(max_length=16)  # initial | metadata | data | breaking | rollback
    changelog: str | None = None
    breaking_changes: bool = False
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    data_fingerprint: str = Field(max_length=64)
    metadata_fingerprint: str = Field(max_length=64)
    created_by: str | None = Field(default=None, max_length=320)
    created_at: datetime = _time()
    is_rolled_back: bool = False
    rolled_back_at: datetime | None = _time(nullable=True)
    restored_from: str | None = Field(default=None, max_length=64)


class FeatureEventRecord(SQLModel, table=True):
    """Lifecycle events: activated, deprecated, archived, registered, rolled back."""

    __tablename__ = "feature_events"

    id: int | None = Field(default=None, primary_key=True)
    feature_name: str = Field(max_length=63, index=True)
    event: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    version: str | None = Field(default=None, max_length=64)
    detail: str | None = None
    created_by: str | None = Field(default=None, max_length=320)
    created_at: datetime = _time()


class MaterializationRecord(SQLModel, table=True):
    """One build of one feature, written by the Dagster asset code."""

    __tablename__ = "materializations"
    __table_args__ = (
        Index("ix_materializations_feature_time", "feature_name", "created_at"),
        Index("ix_materializations_snapshot", "snapshot_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feature_name: str = Field(max_length=63)
    version: str = Field(max_length=64)
    code_version: str | None = Field(default=None, max_length=64)
    data_fingerprint: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)  # published | rejected | failed | skipped
    rows: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    min_value: float | None = None
    max_value: float | None = None
    mean_value: float | None = None
    null_fraction: float | None = None
    checks: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = None
    duration_ms: float | None = None
    # The lake snapshot the publish (or rejection, or restore) committed; None for builds
    # that wrote nothing (failed, skipped). Added by migration 0002.
    snapshot_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True, index=False)
    )
    created_at: datetime = _time()


class UsageRecord(SQLModel, table=True):
    """One feature used by one model run."""

    __tablename__ = "feature_usage"
    __table_args__ = (
        Index("ix_feature_usage_feature_time", "feature_name", "usage_timestamp"),
        # Covers the usage statistics, lineage's consuming models and the Dagster UI summary:
        # all three are index-only grouped scans (registry/usage.py), no table lookups.
        Index(
            "ix_feature_usage_stats",
            "feature_name",
            "used_by_model",
            "model_version",
            "environment",
            "feature_version",
            "feature_importance",
            "correlation_with_target",
            "usage_timestamp",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    feature_name: str = Field(max_length=63)
    feature_version: str = Field(max_length=64)
    used_by_model: str = Field(max_length=255)
    model_version: str = Field(max_length=64)
    environment: str = Field(max_length=16)  # dev | staging | production
    feature_importance: float | None = None
    correlation_with_target: float | None = None
    usage_timestamp: datetime = _time()
    execution_id: str | None = Field(default=None, max_length=255)
    execution_duration_ms: float | None = None


class TrainingSetRecord(SQLModel, table=True):
    """One training set's manifest: what it read, pinned to lake snapshots.

    ``snapshot_ids`` is kept beside the manifest so retention (``gc``) reads the snapshots it
    must keep without parsing every manifest.
    """

    __tablename__ = "training_sets"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = _time(index=True)
    created_by: str | None = Field(default=None, max_length=320)
    used_by_model: str | None = Field(default=None, max_length=255)
    model_version: str | None = Field(default=None, max_length=64)
    environment: str | None = Field(default=None, max_length=16)
    spine_row_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    spine_hash: str = Field(max_length=64)
    snapshot_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
