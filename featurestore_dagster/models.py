"""Results of the Python API: pydantic models whose field names are the API's.

The CLI's ``--json`` output is ``model_dump(mode="json")`` of these, so the two never differ.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from featurestore_dagster.definitions.models import FeatureDefinition


class FeatureVersion(BaseModel):
    """One registered version of a feature (immutable but for the rollback marks).

    Attributes:
        change_category: ``initial``, ``none``, ``metadata``, ``data`` or ``breaking``.
        snapshot: the full definition as registered.
        restored_from: for a rollback, the version whose snapshot it restored.
    """

    model_config = ConfigDict(frozen=True)

    feature_name: str
    version: str
    change_category: str
    changelog: str | None = None
    breaking_changes: bool = False
    created_by: str | None = None
    created_at: datetime
    is_rolled_back: bool = False
    rolled_back_at: datetime | None = None
    snapshot: dict[str, Any]
    data_fingerprint: str
    metadata_fingerprint: str
    restored_from: str | None = None


class FeatureInfo(FeatureDefinition):
    """``get_feature``: the definition's fields plus registered state and usage.

    ``current_version`` is the registered version (None until the feature is registered);
    ``version`` is the one the definition file declares.
    """

    current_version: str | None = None
    registered: bool = False
    downstream_features: list[str] = []
    usage_count: int = 0
    last_used_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deprecated_at: datetime | None = None
    archived_at: datetime | None = None
    definition_file: str | None = None

    def definition(self) -> FeatureDefinition:
        """The plain definition (without the registry's fields)."""
        fields = set(FeatureDefinition.model_fields)
        return FeatureDefinition.model_validate(
            {k: v for k, v in self.model_dump().items() if k in fields}
        )


class MaterializationInfo(BaseModel):
    """One build of one feature, as recorded by the Dagster asset code."""

    feature_name: str
    version: str
    code_version: str | None = None
    data_fingerprint: str | None = None
    run_id: str | None = None
    status: str
    rows: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    mean_value: float | None = None
    null_fraction: float | None = None
    checks: list[dict[str, Any]] = []
    error: str | None = None
    duration_ms: float | None = None
    snapshot_id: int | None = None  # the lake snapshot of the publish
    created_at: datetime
