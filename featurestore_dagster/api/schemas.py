"""Request and response bodies of the REST API (field names are the Python API's).

Requests refuse unknown fields and non-finite numbers; the definition's own rules (SQL
references, python references, the graph) are checked by ``FeatureStore`` on the same path as
the command line, and come back as 422s naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import semver
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

from featurestore_dagster.definitions.models import (
    NAME_PATTERN,
    DataType,
    FeatureStatus,
    FeatureType,
    TransformationType,
    ValidationRule,
)
from featurestore_dagster.models import FeatureInfo, FeatureVersion, MaterializationInfo
from featurestore_dagster.usage.models import Environment, FeatureUsage

FeatureName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# Bounded so that a body can never make the server hold or echo huge strings.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=255)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _semver(value: str) -> str:
    try:
        semver.Version.parse(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{value}' is not a semantic version (MAJOR.MINOR.PATCH)") from None
    return value


SemVer = Annotated[str, StringConstraints(max_length=64), AfterValidator(_semver)]


class Body(BaseModel):
    """Request bodies: unknown fields are errors, NaN and infinities are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- definitions --------------------------------------------------------------------------


class TransformationPatch(Body):
    """Fields of the transformation to change; those not given are kept."""

    transformation_type: TransformationType | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    parameters: dict[str, Any] | None = None


class FeatureChanges(Body):
    """Definition fields that can change (every one optional; ``null`` clears a field)."""

    feature_type: FeatureType | None = None
    data_type: DataType | None = None
    status: FeatureStatus | None = None
    description: LongText | None = None
    owner: ShortText | None = None
    tags: list[ShortText] | None = Field(None, max_length=100)
    entity_columns: list[ShortText] | None = Field(None, max_length=32)
    timestamp_column: ShortText | None = None
    upstream_features: list[FeatureName] | None = Field(None, max_length=1000)
    sources: list[ShortText] | None = Field(None, max_length=100)
    transformation: TransformationPatch | None = None
    validation_rules: list[ValidationRule] | None = Field(None, max_length=100)
    schedule: ShortText | None = None
    duckdb_table: ShortText | None = None


class FeatureUpdate(FeatureChanges):
    """``PUT /features/{name}``: the fields to change; without ``version`` the smallest
    version the change requires is registered."""

    version: SemVer | None = None
    changelog: LongText | None = None
    breaking_changes: bool | None = None
    allow_breaking: bool = False


class VersionCreate(FeatureChanges):
    """``POST /features/{name}/versions``: a new version, with optional field changes.

    ``version`` (or a ``bump`` level; default the smallest the change requires, a patch
    when nothing changed) must be above every registered version.
    """

    version: SemVer | None = None
    bump: Literal["major", "minor", "patch"] | None = None
    changelog: LongText | None = None
    breaking_changes: bool | None = None
    allow_breaking: bool = False


# --- usage --------------------------------------------------------------------------------


class UsageRecordIn(Body):
    """One feature used by one model run."""

    feature_name: FeatureName
    feature_version: SemVer | None = None
    used_by_model: ShortText
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    environment: Environment
    feature_importance: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    correlation_with_target: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = None
    usage_timestamp: datetime | None = None
    execution_id: ShortText | None = None
    execution_duration_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class ModelRunIn(Body):
    """One model run's use of many features, recorded atomically."""

    used_by_model: ShortText
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    environment: Environment
    features: (
        dict[FeatureName, Annotated[float, Field(ge=0, allow_inf_nan=False)] | None]
        | Annotated[list[FeatureName], Field(min_length=1, max_length=10_000)]
    )
    correlations: (
        dict[FeatureName, Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None] | None
    ) = None
    feature_versions: dict[FeatureName, SemVer] | None = None
    usage_timestamp: datetime | None = None
    execution_id: ShortText | None = None
    execution_duration_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


def _usage_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "run" if "features" in value else "record"
    return "run" if hasattr(value, "features") else "record"


UsageIn = Annotated[
    Annotated[UsageRecordIn, Tag("record")] | Annotated[ModelRunIn, Tag("run")],
    Discriminator(_usage_kind),
]


class UsageRecorded(BaseModel):
    """What ``POST /features/usage`` wrote."""

    records_written: int
    features: list[str]
    records: list[FeatureUsage]


# --- responses ----------------------------------------------------------------------------


class FeatureList(BaseModel):
    features: list[FeatureInfo]
    total: int
    skip: int
    limit: int


class VersionList(BaseModel):
    feature_name: str
    versions: list[FeatureVersion]
    total: int


class UsageHistory(BaseModel):
    feature_name: str
    records: list[FeatureUsage]
    total: int


class MaterializationList(BaseModel):
    feature_name: str
    materializations: list[MaterializationInfo]
    total: int


class ValidationIssue(BaseModel):
    """One invalid field: ``loc`` locates it (``["body", "transformation", "code"]``)."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    feature: str | None = None
    field: str | None = None
    file: str | None = None


class ErrorBody(BaseModel):
    """Every error: a message, or one entry per invalid field."""

    detail: str | list[ValidationIssue]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    features: int
