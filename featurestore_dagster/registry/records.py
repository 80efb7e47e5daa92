"""Rows of the version registry: what one registration holds and how it becomes table rows.

Pure functions between ``Registration`` / result models and the column values of
``feature_versions`` and ``feature_events``; ``store.Registry`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from featurestore_dagster.models import FeatureVersion
from featurestore_dagster.registry.models import as_utc
from featurestore_dagster.versioning.plan import version_key


@dataclass
class Registration:
    """One version to register.

    Attributes:
        expected_version: the feature's current version when the change was planned (None:
            a new feature). A different current version at write time is a conflict.
        event: lifecycle event recorded with it (``registered``, ``activated``, ...).
        rolls_back: versions this one undoes (marked ``is_rolled_back``).
    """

    feature_name: str
    version: str
    change_category: str
    snapshot: dict[str, Any]
    data_fingerprint: str
    metadata_fingerprint: str
    changelog: str | None = None
    breaking_changes: bool = False
    created_by: str | None = None
    expected_version: str | None = None
    restored_from: str | None = None
    definition_file: str | None = None
    event: str = "registered"
    detail: str | None = None
    rolls_back: list[str] = field(default_factory=list)


def _since(status: str, target: str, row: Mapping[str, Any], now: datetime) -> datetime | None:
    """Keep the time a feature entered ``target``; clear it once it leaves."""
    if status != target:
        return None
    return row[f"{target}_at"] or now


def _event(name, event_name, row, to_status, version, detail, now, created_by) -> dict[str, Any]:
    return {
        "feature_name": name,
        "event": event_name,
        "from_status": row["status"] if row else None,
        "to_status": to_status,
        "version": version,
        "detail": detail,
        "created_by": created_by,
        "created_at": now,
    }


def _version_values(reg: Registration, now: datetime, created_by: str | None) -> dict[str, Any]:
    parsed = version_key(reg.version)
    return {
        "feature_name": reg.feature_name,
        "version": reg.version,
        "major": parsed.major,
        "minor": parsed.minor,
        "patch": parsed.patch,
        "change_category": reg.change_category,
        "changelog": reg.changelog,
        "breaking_changes": reg.breaking_changes,
        "snapshot": reg.snapshot,
        "data_fingerprint": reg.data_fingerprint,
        "metadata_fingerprint": reg.metadata_fingerprint,
        "created_by": reg.created_by or created_by,
        "created_at": now,
        "is_rolled_back": False,
        "rolled_back_at": None,
        "restored_from": reg.restored_from,
    }


def _public(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in FeatureVersion.model_fields}


def _version(row) -> FeatureVersion:
    data = dict(row._mapping)
    return FeatureVersion(
        feature_name=data["feature_name"],
        version=data["version"],
        change_category=data["change_category"],
        changelog=data["changelog"],
        breaking_changes=bool(data["breaking_changes"]),
        created_by=data["created_by"],
        created_at=as_utc(data["created_at"]),
        is_rolled_back=bool(data["is_rolled_back"]),
        rolled_back_at=as_utc(data["rolled_back_at"]),
        snapshot=data["snapshot"],
        data_fingerprint=data["data_fingerprint"],
        metadata_fingerprint=data["metadata_fingerprint"],
        restored_from=data["restored_from"],
    )
