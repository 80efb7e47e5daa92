"""Materialization records: what each Dagster build of a feature produced.

The feature multi-asset collects one row per feature with ``MaterializationRecorder`` and
writes them at the end of the step in one transaction, tagged with the Dagster run id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from featurestore_dagster.errors import RegistryError

log = logging.getLogger("featurestore")


def build_record(build, *, run_id: str | None, code_version: str | None, fingerprint: str | None):
    """One ``materializations`` row from a ``FeatureBuild``."""
    profile = build.profile
    checks = [
        {
            "name": c.name,
            "passed": bool(c.passed),
            "blocking": bool(c.blocking),
            "description": c.description,
            "metadata": json.loads(json.dumps(c.metadata, default=str)),
        }
        for c in build.checks
    ]
    return {
        "feature_name": build.feature_name,
        "version": build.version,
        "code_version": code_version,
        "data_fingerprint": fingerprint,
        "run_id": run_id,
        "status": build.status.value,
        "rows": build.rows,
        "min_value": _number(profile, "min"),
        "max_value": _number(profile, "max"),
        "mean_value": _number(profile, "mean"),
        "null_fraction": _number(profile, "null_fraction"),
        "checks": checks,
        "error": build.error,
        "duration_ms": round(build.seconds * 1000.0, 3),
        "snapshot_id": getattr(build, "snapshot_id", None),
    }


def _number(profile, name: str) -> float | None:
    value = getattr(profile, name, None) if profile is not None else None
    return float(value) if value is not None else None


class MaterializationRecorder:
    """Collect the builds of one step; ``flush`` writes them to the registry.

    Args:
        registry_url: the registry database.
        run_id: the Dagster run id.
        code_version: definition -> its code version (the translator's).
        graph: the feature graph (definitions for fingerprints).
    """

    def __init__(self, registry_url: str, run_id: str | None, code_version: Callable, graph):
        self.registry_url = registry_url
        self.run_id = run_id
        self.code_version = code_version
        self.graph = graph
        self.rows: list[dict[str, Any]] = []

    def commit_info(self, definition) -> dict[str, Any]:
        """What the lake commit of a publish records beside the data, so a lost registry
        record can be rebuilt from the lake's snapshots (``featurestore doctor``)."""
        return {
            "code_version": self.code_version(definition),
            "data_fingerprint": self.graph.data_fingerprint(definition.feature_name),
            "run_id": self.run_id,
        }

    def add(self, build) -> None:
        if getattr(build, "discarded", False):  # `check` built it and threw it away
            return
        definition = self.graph[build.feature_name]
        self.rows.append(
            build_record(
                build,
                run_id=self.run_id,
                code_version=self.code_version(definition),
                fingerprint=self.graph.data_fingerprint(build.feature_name),
            )
        )

    def flush(self, logger=None) -> None:
        """Write what was collected; a registry that cannot be used costs a warning, never
        the build (the data is already published)."""
        rows, self.rows = self.rows, []
        if not rows:
            return
        from featurestore_dagster.registry.store import Registry

        try:
            Registry(self.registry_url).record_materializations(rows)
        except RegistryError as error:
            (logger or log).warning(f"materializations not recorded in the registry: {error}")
