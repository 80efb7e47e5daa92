"""Result models of lineage, usage and statistics.

Plain data: field names are the API's (and the ``--json`` output's); nothing here talks to a
database or prints.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Environment(StrEnum):
    """Where a model ran."""

    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- usage -------------------------------------------------------------------------------------


class FeatureUsage(_Result):
    """One feature used by one model run, as stored."""

    id: int | None = None
    feature_name: str
    feature_version: str
    used_by_model: str
    model_version: str
    environment: Environment
    feature_importance: float | None = None
    correlation_with_target: float | None = None
    usage_timestamp: datetime
    execution_id: str | None = None
    execution_duration_ms: float | None = None


class UsageBatchResult(_Result):
    """What ``record_usage_batch`` wrote: the count, and the records when asked for them."""

    records_written: int
    features: list[str]
    records: list[FeatureUsage] = []


# --- statistics --------------------------------------------------------------------------------


class VersionUsageStatistics(_Result):
    """Usage of one feature version."""

    feature_version: str
    usage_count: int
    unique_models: int
    avg_importance: float | None = None
    avg_correlation: float | None = None
    first_used_at: datetime | None = None
    last_used_at: datetime | None = None


class ModelUsageStatistics(_Result):
    """How one model used the feature."""

    used_by_model: str
    usage_count: int
    model_versions: list[str]
    environments: list[str]
    feature_versions: list[str]
    avg_importance: float | None = None
    avg_correlation: float | None = None
    first_used_at: datetime | None = None
    last_used_at: datetime | None = None


class EnvironmentUsageStatistics(_Result):
    """Usage of the feature in one environment."""

    environment: str
    usage_count: int
    unique_models: int
    last_used_at: datetime | None = None


class FeatureStatistics(_Result):
    """Aggregates over a feature's usage records (``get_feature_statistics``).

    ``total_usage`` counts usage records; ``usage_count`` is the registry's counter, which the
    same writes keep equal to it.
    """

    feature_name: str
    current_version: str | None = None
    total_usage: int
    unique_models: int
    environments: list[str]
    avg_importance: float | None = None
    avg_correlation: float | None = None
    first_used_at: datetime | None = None
    last_used_at: datetime | None = None
    usage_count: int = 0
    by_version: list[VersionUsageStatistics] = Field(default_factory=list)
    by_model: list[ModelUsageStatistics] = Field(default_factory=list)
    by_environment: list[EnvironmentUsageStatistics] = Field(default_factory=list)


# --- lineage -----------------------------------------------------------------------------------


class LineageNode(_Result):
    """One feature of a lineage answer with its direct edges (as the graph has them)."""

    feature_name: str
    version: str
    status: str
    registered: bool
    upstream_features: list[str]
    downstream_features: list[str]
    sources: list[str] = Field(default_factory=list)


class ConsumingModel(_Result):
    """A model (version, environment) that recorded using the feature."""

    used_by_model: str
    model_version: str
    environment: str
    usage_count: int
    feature_versions: list[str]
    last_used_at: datetime | None = None


class FeatureLineage(_Result):
    """Where a feature comes from and what depends on it (``get_feature_lineage``).

    ``all_upstream``/``all_downstream``/``all_sources`` are filled only when asked
    ``recursive=True``; the dependents counts are always filled. ``nodes`` holds every feature
    named in the answer, so a client can draw the trees without asking again.
    """

    feature_name: str
    current_version: str
    status: str
    registered: bool
    upstream_features: list[str]
    downstream_features: list[str]
    all_upstream: list[str] = Field(default_factory=list)
    all_downstream: list[str] = Field(default_factory=list)
    direct_dependents_count: int
    total_dependents_count: int
    recursive: bool = False
    sources: list[str] = Field(default_factory=list)
    all_sources: list[str] = Field(default_factory=list)
    consuming_models: list[ConsumingModel] = Field(default_factory=list)
    nodes: dict[str, LineageNode] = Field(default_factory=dict)
