"""Lineage, usage recording and usage statistics of the Python API.

``UsageAPI`` is a mixin: the host (``FeatureStore``) provides ``self.graph`` (the current
``FeatureGraph``) and ``self.registry.engine`` (a SQLAlchemy engine with the tables created).
Checking lives in ``usage_validation``, SQL in ``registry.usage``, result assembly in
``usage_reports`` and ``lineage``.

Example:
    >>> store.record_model_usage(
    ...     used_by_model="alpha_ranker", model_version="2.3.0", environment="production",
    ...     features={"stock_rsi_14d": 0.31, "stock_daily_return": 0.12},
    ...     correlations={"stock_rsi_14d": -0.08},
    ... )
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.errors import FeatureStoreError, UsageError
from featurestore_dagster.registry import usage as sql
from featurestore_dagster.usage.lineage import build_lineage, lineage_members
from featurestore_dagster.usage.models import (
    FeatureLineage,
    FeatureStatistics,
    FeatureUsage,
    UsageBatchResult,
)
from featurestore_dagster.usage.reports import (
    by_semver,
    consuming_models,
    registry_usage_metadata,
    statistics_from_groups,
    usage_from_row,
    usage_metadata,
    usage_summary,
)
from featurestore_dagster.usage.validation import expand_usage, raise_problems, validate_usage

log = logging.getLogger("featurestore")

__all__ = [
    "UsageAPI",
    "expand_usage",
    "registry_usage_metadata",
    "usage_metadata",
    "usage_summary",
    "validate_usage",
]


class UsageAPI:
    """Lineage, usage and statistics methods of ``FeatureStore`` (mixin).

    The host provides ``graph`` (a ``FeatureGraph``) and ``registry.engine``.
    """

    graph: FeatureGraph
    registry: Any

    # --- lineage ------------------------------------------------------------------------------

    def get_feature_lineage(self, feature_name: str, recursive: bool = False) -> FeatureLineage:
        """Upstream and downstream features (direct, or all when ``recursive``), dependents
        counts, sources, and the models that recorded using the feature.

        Raises:
            UnknownFeatureError: no definition has this name.
        """
        graph = self.graph
        members = lineage_members(graph, feature_name, recursive)
        engine = self._usage_engine
        with sql.registry_errors(engine), engine.connect() as conn:
            registered = sql.current_versions(conn, members)
            models = consuming_models(sql.usage_groups(conn, feature_name))
        return build_lineage(
            graph,
            feature_name,
            recursive=recursive,
            registered_versions=registered,
            consuming_models=models,
        )

    # --- recording ----------------------------------------------------------------------------

    def record_feature_usage(
        self,
        feature_name: str,
        used_by_model: str,
        model_version: str,
        environment: str,
        feature_importance: float | None = None,
        correlation_with_target: float | None = None,
        feature_version: str | None = None,
        usage_timestamp: datetime | None = None,
        execution_id: str | None = None,
        execution_duration_ms: float | None = None,
    ) -> FeatureUsage:
        """Record that one model run used one feature.

        ``feature_version`` defaults to the feature's current registered version.

        Raises:
            UnknownFeatureError: no definition has this name.
            UsageError: an unregistered feature or unknown version, an unknown environment,
                NaN/infinite numbers, a correlation outside [-1, 1] or a negative importance.
                Nothing is written.
        """
        record = {
            "feature_name": feature_name,
            "feature_version": feature_version,
            "used_by_model": used_by_model,
            "model_version": model_version,
            "environment": environment,
            "feature_importance": feature_importance,
            "correlation_with_target": correlation_with_target,
            "usage_timestamp": usage_timestamp,
            "execution_id": execution_id,
            "execution_duration_ms": execution_duration_ms,
        }
        return self._record([record], returning=True)[0]

    def record_model_usage(
        self,
        used_by_model: str,
        model_version: str,
        environment: str,
        features: Mapping[str, float | None] | Iterable[str],
        correlations: Mapping[str, float | None] | None = None,
        feature_versions: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        execution_duration_ms: float | None = None,
        usage_timestamp: datetime | None = None,
        training_set_id: str | None = None,
    ) -> list[FeatureUsage]:
        """Record one model run's use of many features in one atomic write.

        Args:
            features: feature name -> importance (or just names, importance unknown).
            correlations: feature name -> correlation with the target, within [-1, 1].
            feature_versions: feature name -> the version used (default: current registered).
            training_set_id: the training set the model was fitted on: its usage records
                (written by ``get_training_set(model=...)``) get these importances; without
                such records they are written now, with the versions the training set read
                and its ``execution_id`` (the run that built it, else the training set id).

        Raises:
            UnknownFeatureError, UsageError: as ``record_feature_usage``; one bad feature
                refuses the whole run and nothing is written.
        """
        if training_set_id is not None:
            from featurestore_dagster.usage.training import record_training_set_usage

            return record_training_set_usage(
                self,
                training_set_id,
                used_by_model=used_by_model,
                model_version=model_version,
                environment=environment,
                features=features,
                correlations=correlations,
                feature_versions=feature_versions,
                execution_id=execution_id,
                execution_duration_ms=execution_duration_ms,
                usage_timestamp=usage_timestamp,
            )
        run = {
            "used_by_model": used_by_model,
            "model_version": model_version,
            "environment": environment,
            "features": features,
            "correlations": correlations,
            "feature_versions": feature_versions,
            "execution_id": execution_id,
            "execution_duration_ms": execution_duration_ms,
            "usage_timestamp": usage_timestamp,
        }
        return self._record(expand_usage([run]), returning=True)

    def record_usage_batch(
        self, items: Iterable[Mapping[str, Any]], *, return_records: bool = False
    ) -> UsageBatchResult:
        """Record many usage records and model runs in one atomic write (bulk import).

        Each item is either one usage record (the fields of ``record_feature_usage``) or a
        model run (the arguments of ``record_model_usage``: it has ``features``). One bad
        item refuses the whole batch. ``return_records`` also returns the stored records.
        """
        records = expand_usage(items)
        written = self._record(records, returning=return_records)
        return _batch_result(records, written, return_records)

    def record_usage_groups(
        self, groups: Sequence[Iterable[Mapping[str, Any]]], *, return_records: bool = False
    ) -> list[UsageBatchResult | FeatureStoreError]:
        """Record several independent batches (as ``record_usage_batch``) in one transaction:
        a group commit for a server that receives many small posts at once.

        Each group is checked alone; a group with a problem gets its error in its place and
        the others are written. When the write itself refuses one group (a version that is
        not registered), each group is written in its own transaction instead, so only that
        group fails. Results are in the order of ``groups``.

        Raises:
            RegistryError: the registry cannot be written (every group failed).
        """
        graph = self.graph  # one snapshot of the definitions for every group
        now = datetime.now(UTC)
        results: list[UsageBatchResult | FeatureStoreError | None] = [None] * len(groups)
        ready: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]] = []
        for index, items in enumerate(groups):
            try:
                records = expand_usage(items)
                ready.append((index, records, validate_usage(records, graph, now=now)))
            except FeatureStoreError as error:
                results[index] = error
        if len(ready) > 1:
            rows = [dict(row) for _, _, group in ready for row in group]
            try:
                written = self._record(rows, returning=return_records, rows=rows)
            except UsageError:
                pass  # one group's versions: write each group alone below
            else:
                for index, records, group in ready:
                    results[index] = _batch_result(records, written[: len(group)], return_records)
                    written = written[len(group) :]
                ready = []
        for index, records, group in ready:
            try:
                written = self._record(records, returning=return_records, rows=group)
            except UsageError as error:
                results[index] = error
            else:
                results[index] = _batch_result(records, written, return_records)
        return results

    def _record(
        self,
        records: list[dict[str, Any]],
        *,
        returning: bool,
        rows: list[dict[str, Any]] | None = None,
        also: Callable[[Connection], None] | None = None,
    ) -> list[FeatureUsage]:
        """Validate and write usage records in one transaction; ``also(conn)`` runs in that
        same transaction first (a training set's manifest); ``rows`` are already validated."""
        graph = self.graph  # one snapshot of the definitions for the whole call
        if rows is None:
            rows = validate_usage(records, graph, now=datetime.now(UTC))

        known = self.__dict__.setdefault("_registered_version_cache", set())

        def work(conn: Connection) -> list[int]:
            if also is not None:
                also(conn)
            _resolve_versions(conn, rows, known)
            ids = sql.insert_usage(conn, rows, returning=returning)
            counts: dict[str, tuple[int, datetime]] = {}
            for row in rows:
                n, last = counts.get(row["feature_name"], (0, row["usage_timestamp"]))
                counts[row["feature_name"]] = (n + 1, max(last, row["usage_timestamp"]))
            if sql.add_usage_counts(conn, counts) != len(counts):
                raise UsageError("a feature's registry row disappeared while recording usage")
            return ids

        engine = self._usage_engine
        with sql.registry_errors(engine):
            ids = sql.run_write(engine, work)
        _warn_status(graph, rows)
        if not returning:
            return []
        return [FeatureUsage(id=i, **row) for i, row in zip(ids, rows, strict=True)]

    # --- reading ------------------------------------------------------------------------------

    def get_feature_usage_history(self, feature_name: str, limit: int = 100) -> list[FeatureUsage]:
        """The feature's usage records, newest first, at most ``limit``.

        Raises:
            UnknownFeatureError: no definition has this name.
            UsageError: ``limit`` is below 1.
        """
        self.graph[feature_name]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"limit must be a positive integer, got {limit!r}")
        engine = self._usage_engine
        with sql.registry_errors(engine), engine.connect() as conn:
            rows = sql.usage_history(conn, feature_name, limit)
        return [usage_from_row(row) for row in rows]

    def get_feature_statistics(self, feature_name: str) -> FeatureStatistics:
        """Usage aggregates of a feature (overall and per version, model and environment).

        Raises:
            UnknownFeatureError: no definition has this name.
        """
        self.graph[feature_name]
        engine = self._usage_engine
        with sql.registry_errors(engine), engine.connect() as conn:
            groups = sql.usage_groups(conn, feature_name)
            registered = sql.registered_features(conn, [feature_name]).get(feature_name)
        return statistics_from_groups(feature_name, groups, registered)

    @property
    def _usage_engine(self) -> Engine:
        return self.registry.engine


def _resolve_versions(
    conn: Connection, rows: list[dict[str, Any]], known: set[tuple[str, str]]
) -> None:
    """Fill default versions from the registry and refuse unregistered features/versions.

    ``known`` caches (feature, version) pairs seen registered: a registered version is
    immutable and never removed, so only pairs not seen yet are looked up.
    """
    names = {row["feature_name"] for row in rows}
    current = sql.current_versions(conn, names)
    missing = sorted(names - set(current))
    if missing:
        raise UsageError(
            f"feature(s) {', '.join(missing)} exist in the definitions but are not registered;"
            " run `featurestore apply` first, then record usage (nothing written)"
        )
    asked = {
        (row["feature_name"], row["feature_version"])
        for row in rows
        if row["feature_version"] is not None
    }
    unseen = {name for name, version in asked - known}
    if unseen:
        for name, versions in sql.registered_versions(conn, unseen).items():
            known.update((name, version) for version in versions)
    problems = []
    for row in rows:
        name = row["feature_name"]
        if row["feature_version"] is None:
            row["feature_version"] = current[name]
        elif (name, row["feature_version"]) not in known:
            registered = [v for n, v in known if n == name]
            problems.append(
                f"feature '{name}' has no registered version {row['feature_version']}"
                f" (registered: {', '.join(by_semver(registered)) or 'none'})"
            )
    raise_problems(sorted(set(problems)))


def _batch_result(
    records: list[dict[str, Any]], written: list[FeatureUsage], return_records: bool
) -> UsageBatchResult:
    return UsageBatchResult(
        records_written=len(records),
        features=sorted({r["feature_name"] for r in records}),
        records=written if return_records else [],
    )


def _warn_status(graph: FeatureGraph, rows: list[dict[str, Any]]) -> None:
    for name in sorted({row["feature_name"] for row in rows}):
        status = graph[name].status.value
        if status in {"deprecated", "archived"}:
            log.warning("usage recorded for %s feature '%s'", status, name)
