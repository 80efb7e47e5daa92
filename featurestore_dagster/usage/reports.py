"""Usage results assembled from the registry's grouped rows: statistics, consuming models and
the Dagster UI summary. Every number comes from SQL aggregates (``registry.usage``); this module
only merges groups and shapes the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import semver
from sqlalchemy import Engine

from featurestore_dagster.registry import usage as sql
from featurestore_dagster.registry.models import as_utc
from featurestore_dagster.usage.models import (
    ConsumingModel,
    EnvironmentUsageStatistics,
    FeatureStatistics,
    FeatureUsage,
    ModelUsageStatistics,
    VersionUsageStatistics,
)
from featurestore_dagster.usage.validation import ENVIRONMENTS

log = logging.getLogger("featurestore")


def usage_from_row(row: Any) -> FeatureUsage:
    data = dict(row._mapping)
    data["usage_timestamp"] = as_utc(data["usage_timestamp"])
    return FeatureUsage(**data)


def by_semver(versions: Iterable[str]) -> list[str]:
    """Newest first; strings that are not semver sort last, alphabetically."""

    def key(text: str):
        try:
            return (1, semver.Version.parse(text))
        except (ValueError, TypeError):
            return (0, text)

    return sorted(versions, key=key, reverse=True)


def _avg(total: float, count: int) -> float | None:
    return total / count if count else None


def statistics_from_groups(
    feature_name: str, groups: list[sql.UsageGroup], registered: sql.FeatureRow | None
) -> FeatureStatistics:
    """Merge the (model, model version, environment, feature version) aggregates into every
    breakdown, exactly (sums and counts merge; averages are taken last)."""

    def merge(items: list[sql.UsageGroup]) -> dict[str, Any]:
        return {
            "usage_count": sum(g.records for g in items),
            "unique_models": len({g.used_by_model for g in items}),
            "avg_importance": _avg(
                sum(g.importance_sum for g in items), sum(g.importance_count for g in items)
            ),
            "avg_correlation": _avg(
                sum(g.correlation_sum for g in items), sum(g.correlation_count for g in items)
            ),
            "first_used_at": min((g.first_used_at for g in items if g.first_used_at), default=None),
            "last_used_at": max((g.last_used_at for g in items if g.last_used_at), default=None),
        }

    def split(attribute: str) -> dict[str, list[sql.UsageGroup]]:
        parts: dict[str, list[sql.UsageGroup]] = {}
        for group in groups:
            parts.setdefault(getattr(group, attribute), []).append(group)
        return parts

    overall = merge(groups)
    by_version = split("feature_version")
    by_model = split("used_by_model")
    by_environment = split("environment")
    models = [
        ModelUsageStatistics(
            used_by_model=model,
            model_versions=by_semver({g.model_version for g in items}),
            environments=_in_environment_order({g.environment for g in items}),
            feature_versions=by_semver({g.feature_version for g in items}),
            **{k: v for k, v in merge(items).items() if k != "unique_models"},
        )
        for model, items in by_model.items()
    ]
    models.sort(key=lambda m: (-m.usage_count, m.used_by_model))
    return FeatureStatistics(
        feature_name=feature_name,
        current_version=registered.current_version if registered else None,
        total_usage=overall["usage_count"],
        unique_models=overall["unique_models"],
        environments=_in_environment_order(by_environment),
        avg_importance=overall["avg_importance"],
        avg_correlation=overall["avg_correlation"],
        first_used_at=overall["first_used_at"],
        last_used_at=overall["last_used_at"],
        usage_count=registered.usage_count if registered else 0,
        by_version=[
            VersionUsageStatistics(feature_version=version, **merge(by_version[version]))
            for version in by_semver(by_version)
        ],
        by_model=models,
        by_environment=[
            EnvironmentUsageStatistics(
                environment=environment,
                **{
                    k: v
                    for k, v in merge(by_environment[environment]).items()
                    if k in {"usage_count", "unique_models", "last_used_at"}
                },
            )
            for environment in _in_environment_order(by_environment)
        ],
    )


def _in_environment_order(environments: Iterable[str]) -> list[str]:
    rank = {name: index for index, name in enumerate(ENVIRONMENTS)}
    return sorted(environments, key=lambda e: (rank.get(e, len(rank)), e))


def consuming_models(groups: list[sql.UsageGroup]) -> list[ConsumingModel]:
    """One entry per (model, model version, environment), most recently used first."""
    merged: dict[tuple[str, str, str], list[sql.UsageGroup]] = {}
    for group in groups:
        key = (group.used_by_model, group.model_version, group.environment)
        merged.setdefault(key, []).append(group)
    models = [
        ConsumingModel(
            used_by_model=model,
            model_version=model_version,
            environment=environment,
            usage_count=sum(g.records for g in items),
            feature_versions=by_semver({g.feature_version for g in items}),
            last_used_at=max((g.last_used_at for g in items if g.last_used_at), default=None),
        )
        for (model, model_version, environment), items in merged.items()
    ]
    epoch = datetime.min.replace(tzinfo=UTC)
    models.sort(key=lambda m: (-(m.last_used_at or epoch).timestamp(), m.used_by_model))
    return models


# --- Dagster UI ----------------------------------------------------------------------------------


def usage_summary(engine: Engine, top: int = 3) -> dict[str, dict[str, Any]]:
    """Per feature: usage_count, unique_models, top_models (by mean importance), last_used_at.

    One grouped query over the usage table.
    """
    features: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        rows = sql.feature_model_summaries(conn)
    for row in rows:
        entry = features.setdefault(
            row.feature_name, {"usage_count": 0, "models": [], "last_used_at": None}
        )
        entry["usage_count"] += int(row.records)
        importance = _avg(float(row.importance_sum or 0.0), int(row.importance_count))
        entry["models"].append((row.used_by_model, int(row.records), importance))
        last = as_utc(row.last_used_at)
        if last is not None and (entry["last_used_at"] is None or last > entry["last_used_at"]):
            entry["last_used_at"] = last
    summary = {}
    for name, entry in features.items():
        models = sorted(
            entry["models"],
            key=lambda m: (m[2] is None, -(m[2] or 0.0), -m[1], m[0]),
        )
        summary[name] = {
            "usage_count": entry["usage_count"],
            "unique_models": len(models),
            "top_models": [
                {"used_by_model": m[0], "usage_count": m[1], "avg_importance": m[2]}
                for m in models[:top]
            ],
            "last_used_at": entry["last_used_at"],
        }
    return summary


def usage_metadata(engine: Engine, top: int = 3) -> dict[str, dict[str, Any]]:
    """Asset metadata per feature for the Dagster UI, from ``usage_summary``.

    Features nobody used are absent (no extra metadata).
    """
    import dagster as dg

    metadata = {}
    for name, entry in usage_summary(engine, top).items():
        lines = ["| model | uses | mean importance |", "|---|---:|---:|"]
        for model in entry["top_models"]:
            importance = model["avg_importance"]
            shown = "-" if importance is None else f"{importance:.4g}"
            lines.append(f"| {model['used_by_model']} | {model['usage_count']:,} | {shown} |")
        item: dict[str, Any] = {
            "usage_count": dg.MetadataValue.int(entry["usage_count"]),
            "unique_models": dg.MetadataValue.int(entry["unique_models"]),
            "top_models": dg.MetadataValue.md("\n".join(lines)),
        }
        if entry["last_used_at"] is not None:
            item["last_used_at"] = dg.MetadataValue.timestamp(entry["last_used_at"])
        metadata[name] = item
    return metadata


def registry_usage_metadata(registry_url: str) -> dict[str, dict[str, Any]]:
    """``usage_metadata`` of the registry at ``registry_url``, or ``{}`` when there is none yet.

    Never creates the registry: a SQLite file that does not exist means no usage, and a
    database without the usage table (or that cannot be reached) means no extra metadata.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        url = make_url(registry_url)
    except SQLAlchemyError:
        return {}
    if url.get_backend_name() == "sqlite":
        from pathlib import Path

        if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
            return {}
        # Read-only: loading the code location never creates or changes the file.
        uri = f"{Path(url.database).resolve().as_uri()}?mode=ro"
        engine = create_engine("sqlite://", creator=lambda: _sqlite_ro(uri))
    else:
        timeout = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
        engine = create_engine(url, connect_args=timeout)
    try:
        return usage_metadata(engine)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        log.warning("usage metadata left out of the assets: %s", reason)
        return {}
    finally:
        engine.dispose()


def _sqlite_ro(uri: str):
    import sqlite3

    return sqlite3.connect(uri, uri=True, timeout=5)
