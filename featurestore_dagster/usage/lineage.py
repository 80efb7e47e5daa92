"""Lineage answers assembled from the one ``FeatureGraph`` (plus registry facts passed in).

Every edge and closure here comes from the graph's own methods; this module only decides what
an answer holds. Pure: no database, no printing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.usage.models import ConsumingModel, FeatureLineage, LineageNode


def lineage_members(graph: FeatureGraph, feature_name: str, recursive: bool = False) -> list[str]:
    """The features a lineage answer names: the feature and its direct (or, ``recursive``,
    transitive) upstream and downstream features, sorted.

    Raises:
        UnknownFeatureError: ``feature_name`` is not in the graph.
    """
    if recursive:
        related = graph.upstream_closure(feature_name) | graph.downstream_closure(feature_name)
    else:
        related = set(graph.upstream(feature_name)) | set(graph.downstream(feature_name))
    return sorted(related | {feature_name})


def build_lineage(
    graph: FeatureGraph,
    feature_name: str,
    *,
    recursive: bool = False,
    registered_versions: Mapping[str, str] | None = None,
    consuming_models: Iterable[ConsumingModel] = (),
) -> FeatureLineage:
    """The lineage of ``feature_name``.

    Args:
        graph: the feature graph (the source of every edge).
        feature_name: the feature asked about.
        recursive: also fill ``all_upstream``, ``all_downstream`` and ``all_sources``.
        registered_versions: feature name -> current registered version; features missing
            from it show their declared version and ``registered=False``.
        consuming_models: models that recorded using the feature.

    Raises:
        UnknownFeatureError: ``feature_name`` is not in the graph.

    Example:
        >>> build_lineage(graph, "stock_rsi_14d", recursive=True).all_upstream
        ['stock_daily_close']
    """
    registered_versions = registered_versions or {}
    definition = graph[feature_name]
    upstream_all = graph.upstream_closure(feature_name)
    downstream_all = graph.downstream_closure(feature_name)
    direct_down = graph.downstream(feature_name)

    members = {feature_name, *graph.upstream(feature_name), *direct_down}
    if recursive:
        members |= upstream_all | downstream_all
    nodes = {name: _node(graph, name, registered_versions) for name in sorted(members)}

    all_sources: list[str] = []
    if recursive:
        all_sources = sorted(
            {source for name in upstream_all | {feature_name} for source in graph[name].sources}
        )
    root = nodes[feature_name]
    return FeatureLineage(
        feature_name=feature_name,
        current_version=root.version,
        status=root.status,
        registered=root.registered,
        upstream_features=sorted(graph.upstream(feature_name)),
        downstream_features=sorted(direct_down),
        all_upstream=sorted(upstream_all) if recursive else [],
        all_downstream=sorted(downstream_all) if recursive else [],
        direct_dependents_count=len(direct_down),
        total_dependents_count=len(downstream_all),
        recursive=recursive,
        sources=list(definition.sources),
        all_sources=all_sources,
        consuming_models=list(consuming_models),
        nodes=nodes,
    )


def _node(graph: FeatureGraph, name: str, registered_versions: Mapping[str, str]) -> LineageNode:
    definition = graph[name]
    registered = name in registered_versions
    return LineageNode(
        feature_name=name,
        version=registered_versions[name] if registered else definition.version,
        status=definition.status.value,
        registered=registered,
        upstream_features=sorted(graph.upstream(name)),
        downstream_features=sorted(graph.downstream(name)),
        sources=list(definition.sources),
    )
