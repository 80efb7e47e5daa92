"""Filtering the definitions, shared by ``list_features`` and ``featurestore list``."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition, FeatureStatus, FeatureType
from featurestore_dagster.errors import InvalidArgumentError


def filter_definitions(
    graph: FeatureGraph | Iterable[FeatureDefinition],
    *,
    feature_type: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    tags: Iterable[str] | None = None,
    skip: int = 0,
    limit: int | None = 100,
) -> list[FeatureDefinition]:
    """Definitions matching every given filter (a feature must carry all ``tags``), by name.

    Raises:
        InvalidArgumentError: a ``feature_type`` or ``status`` that no feature can have.
    """
    _require_member("feature_type", feature_type, FeatureType)
    _require_member("status", status, FeatureStatus)
    wanted_tags = set(tags or [])
    items = sorted(graph, key=lambda d: d.feature_name)
    matches = [
        d
        for d in items
        if (feature_type is None or d.feature_type.value == feature_type)
        and (status is None or d.status.value == status)
        and (owner is None or d.owner == owner)
        and wanted_tags <= set(d.tags)
    ]
    end = None if limit is None else skip + limit
    return matches[skip:end]


def _require_member(name: str, value: str | None, allowed: type[StrEnum]) -> None:
    if value is not None and value not in {member.value for member in allowed}:
        choices = ", ".join(member.value for member in allowed)
        raise InvalidArgumentError(f"unknown {name} '{value}': use one of {choices}")
