"""Code versions: which registered version (or which unregistered build) each definition is.

Dagster's code version of a feature asset, and the version put on the data it builds, come
from here, so a registered label is never put on data that version does not describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.fingerprint import normalization_cache
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.versioning.plan import build_plan, dev_version

if TYPE_CHECKING:
    from featurestore_dagster.registry import Registry


def code_versions(
    graph: FeatureGraph, registry: Registry | None, *, settings: Settings | None = None
) -> dict[str, str]:
    """Feature -> code version: the earliest registered version with the feature's data
    fingerprint (a metadata-only version changes nothing; a rollback returns the old one), else
    ``dev_version`` (never a registered label). ``registry`` None: nothing is registered."""
    registered_state = registry.registered_state() if registry is not None else {}
    with normalization_cache(normalization_cache_path(settings) if settings else None):
        if registered_state:
            plan = build_plan(graph, registered_state)
            fingerprints = {
                f.feature_name: f.data_fingerprint for f in plan.features if f.data_fingerprint
            }
        else:  # nothing registered: every feature is new, only its data fingerprint counts
            fingerprints = {d.feature_name: graph.data_fingerprint_of(d) for d in graph}
    found = registry.code_versions(fingerprints) if registry is not None else {}
    return {
        name: found.get(name) or dev_version(graph[name].version, fingerprint)
        for name, fingerprint in fingerprints.items()
        if name in graph
    }


def normalization_cache_path(settings: Settings) -> Path:
    """Normalized SQL of the fingerprints, cached beside the SQL-reference cache."""
    return settings.cache_path.parent / "sql_normalized.json"
