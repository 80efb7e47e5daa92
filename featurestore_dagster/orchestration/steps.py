"""How features are grouped into Dagster steps: several multi-assets of bounded size.

One multi-asset's cost in Dagster grows faster than linearly with its number of outputs
(1,000 assets with 4 checks each: 52.9 s as one multi-asset, 22.5 s as four of 250), so a large
graph compiles into several. The grouping keeps what one multi-asset gave:

- Features that depend on each other stay in one step whenever their connected part of the
  graph fits (at most ``max_features`` features): inside a step, ``FeatureBuilder`` skips
  exactly the features below a rejected one and builds everything else. Between steps Dagster
  can only skip or abandon a whole downstream step, so fewer cuts mean fewer over-skips.
- Independent parts are packed together by feature type, which makes one step per type in the
  run timeline, and lets the multiprocess executor build them side by side.
- A connected part larger than ``max_features`` is cut into consecutive slices of one
  topological order (by dependency layer, then feature type, then name), so steps depend on
  earlier steps only and never form a cycle.

Everything here is pure: the same graph always gives the same steps and names.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition

MAX_FEATURES_PER_STEP = 250
STEP_SIZE_ENV = "FEATURESTORE_MAX_FEATURES_PER_STEP"
STEP_PREFIX = "build_"


def max_features_per_step() -> int:
    """The bound on one step's features: ``FEATURESTORE_MAX_FEATURES_PER_STEP`` or 250.

    Raises:
        ConfigError: the variable is set but not a positive integer.
    """
    text = os.environ.get(STEP_SIZE_ENV, "").strip()
    if not text:
        return MAX_FEATURES_PER_STEP
    if not text.isdigit() or int(text) < 1:
        from featurestore_dagster.errors import ConfigError

        raise ConfigError(f"{STEP_SIZE_ENV}={text!r} must be a positive whole number")
    return int(text)


@dataclass(frozen=True)
class BuildStep:
    """One multi-asset: its op name and its features in build order."""

    name: str
    features: tuple[str, ...]


def plan_steps(
    definitions: list[FeatureDefinition], max_features: int | None = None
) -> list[BuildStep]:
    """Group compiled ``definitions`` (in build order) into steps of at most ``max_features``.

    Example:
        >>> [s.name for s in plan_steps(FeatureGraph.load(path).compiled)]
        ['build_derived', 'build_raw', 'build_technical_indicator']
    """
    max_features = max_features or max_features_per_step()
    if max_features < 1:
        raise ValueError("max_features must be at least 1")
    groups = partition_groups(definitions)
    if len(groups) == 1 and groups[0][0] == (0, None):
        return _plan(definitions, max_features)
    steps: list[BuildStep] = []
    seen: Counter[str] = Counter()
    for (stage, spec), members in groups:
        suffix = "" if spec is None else f"__{spec[0].value}"
        suffix += f"__{stage + 1}" if stage else ""
        for step in _plan(members, max_features):
            name = step.name + suffix
            seen[name] += 1
            steps.append(
                BuildStep(name if seen[name] == 1 else f"{name}_x{seen[name]}", step.features)
            )
    return steps


def partition_groups(definitions: list[FeatureDefinition]):
    """Features by (stage, partitions): one multi-asset holds one partitions definition.

    A feature's stage counts the changes of partitioning on its longest upstream path, so a
    group depends only on groups of lower stages (or on itself): steps never form a cycle
    even when partitioned and unpartitioned features alternate along a path.
    """
    by_name = {d.feature_name: d for d in definitions}
    stage: dict[str, int] = {}
    groups: dict[tuple, list[FeatureDefinition]] = {}
    for definition in definitions:  # build order: parents come first
        stage[definition.feature_name] = max(
            (
                stage[p] + (_partitioning(by_name[p]) != _partitioning(definition))
                for p in definition.upstream_features
                if p in stage
            ),
            default=0,
        )
        key = (stage[definition.feature_name], _partitioning(definition))
        groups.setdefault(key, []).append(definition)
    return sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] is not None))


def _partitioning(definition: FeatureDefinition):
    return definition.partitions.key if definition.partitions else None


def _plan(definitions: list[FeatureDefinition], max_features: int) -> list[BuildStep]:
    by_name = {d.feature_name: d for d in definitions}
    order = {d.feature_name: i for i, d in enumerate(definitions)}
    groups: list[list[str]] = []
    packs: dict[str, list[list[str]]] = {}
    for component in _components(by_name):
        component.sort(key=order.__getitem__)
        if len(component) > max_features:
            groups.extend(_slices(component, by_name, max_features))
            continue
        kind = _main_type(component, by_name)
        bins = packs.setdefault(kind, [])
        if not bins or len(bins[-1]) + len(component) > max_features:
            bins.append([])
        bins[-1].extend(component)
    for kind in sorted(packs):
        groups.extend(packs[kind])
    for group in groups:
        group.sort(key=order.__getitem__)
    groups.sort(key=lambda g: order[g[0]])  # build order: a step's upstream steps come first
    return _named(groups, by_name)


def _components(by_name: dict[str, FeatureDefinition]) -> list[list[str]]:
    """Weakly connected parts of the graph, each a list of names, in a stable order."""
    parent = {name: name for name in by_name}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name, definition in by_name.items():
        for upstream in definition.upstream_features:
            if upstream in by_name:
                a, b = find(name), find(upstream)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    parts: dict[str, list[str]] = {}
    for name in sorted(by_name):
        parts.setdefault(find(name), []).append(name)
    return list(parts.values())


def _slices(
    component: list[str], by_name: dict[str, FeatureDefinition], max_features: int
) -> list[list[str]]:
    """Cut a large connected part into consecutive slices of a layered topological order."""
    depth: dict[str, int] = {}
    for name in component:  # ``component`` is in build order: parents come first
        parents = [p for p in by_name[name].upstream_features if p in depth]
        depth[name] = 1 + max((depth[p] for p in parents), default=-1)
    layered = sorted(component, key=lambda n: (depth[n], by_name[n].feature_type.value, n))
    return [layered[i : i + max_features] for i in range(0, len(layered), max_features)]


def _main_type(names: list[str], by_name: dict[str, FeatureDefinition]) -> str:
    counts = Counter(by_name[n].feature_type.value for n in names)
    return min(counts, key=lambda kind: (-counts[kind], kind))


def _named(groups: list[list[str]], by_name: dict[str, FeatureDefinition]) -> list[BuildStep]:
    """``build_<type>`` for a step of one feature type, ``build_features`` for a mixed one;
    ``_2``, ``_3`` ... when a name repeats."""
    seen: Counter[str] = Counter()
    steps = []
    for group in groups:
        kinds = {by_name[n].feature_type.value for n in group}
        base = STEP_PREFIX + (kinds.pop() if len(kinds) == 1 else "features")
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base}_{seen[base]}"
        steps.append(BuildStep(name, tuple(group)))
    return steps


def steps_of(graph: FeatureGraph, max_features: int | None = None) -> list[BuildStep]:
    """``plan_steps`` over the graph's compiled features."""
    return plan_steps(graph.compiled, max_features)
