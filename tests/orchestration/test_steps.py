"""Build steps: bounded multi-assets, and skipping below a rejected feature across them."""

from __future__ import annotations

import dagster as dg
import pytest

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.orchestration.definitions import build_assets
from featurestore_dagster.orchestration.runner import run_build
from featurestore_dagster.orchestration.steps import plan_steps
from tests.build.test_publish import seed_prices
from tests.conftest import base_definition


def feature(name, parents=(), feature_type="derived", **overrides):
    if not parents:
        code = f"SELECT symbol, date, close AS {name} FROM raw.prices"
        return base_definition(
            feature_name=name, feature_type=feature_type, transformation={"code": code}, **overrides
        )
    reads = " JOIN ".join(
        f"features.{p} AS t{i}" + (" USING (symbol, date)" if i else "")
        for i, p in enumerate(parents)
    )
    payload = base_definition(
        feature_name=name,
        feature_type=feature_type,
        upstream_features=list(parents),
        sources=[],
        transformation={"code": f"SELECT symbol, date, t0.{parents[0]} AS {name} FROM {reads}"},
    )
    payload.update(overrides)
    return payload


def graph_of(*payloads):
    return FeatureGraph.from_definitions([FeatureDefinition.model_validate(p) for p in payloads])


def steps(graph, size):
    return [(s.name, list(s.features)) for s in plan_steps(graph.compiled, size)]


def test_connected_features_share_a_step_and_independent_ones_pack_by_type():
    graph = graph_of(
        feature("close_a", feature_type="raw"),
        feature("double_a", ["close_a"]),
        feature("close_b", feature_type="raw"),
        feature("close_c", feature_type="raw"),
        feature("macro_x", feature_type="macro_economic"),
    )
    expected = [
        ("build_features", ["close_a", "double_a"]),  # one component, two types
        ("build_raw", ["close_b", "close_c"]),
        ("build_macro_economic", ["macro_x"]),
    ]
    assert steps(graph, 3) == expected
    assert steps(graph, 10) == expected  # a component is packed only with its own main type
    # A bound of 1 cuts the component; the cut steps still come in build order.
    assert [n for _, (n,) in steps(graph, 1)] == [
        "close_a",
        "close_b",
        "close_c",
        "double_a",
        "macro_x",
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_a_large_component_is_cut_in_layers_that_only_point_backwards(size):
    payloads = [feature("root", feature_type="raw")]
    payloads += [feature(f"mid_{i}", ["root"]) for i in range(4)]
    payloads += [feature(f"leaf_{i}", [f"mid_{i}", f"mid_{(i + 1) % 4}"]) for i in range(4)]
    graph = graph_of(*payloads)
    planned = plan_steps(graph.compiled, size)
    assert sorted(n for s in planned for n in s.features) == sorted(graph.names)
    assert all(len(s.features) <= size for s in planned)
    assert len({s.name for s in planned}) == len(planned)
    position = {n: i for i, s in enumerate(planned) for n in s.features}
    for name in graph.names:
        for parent in graph[name].upstream_features:
            assert position[parent] <= position[name]
    # Pure: the same graph, however its files are ordered, plans the same steps.
    assert planned == plan_steps(graph_of(*reversed(payloads)).compiled, size)


def test_each_step_is_one_subsettable_multi_asset_bounded_in_size():
    graph = graph_of(*[feature(f"close_{i}", feature_type="raw") for i in range(7)])
    assets = [
        a
        for a in build_assets(graph, max_features_per_step=3)
        if isinstance(a, dg.AssetsDefinition)
    ]
    assert [len(a.keys) for a in assets] == [3, 3, 1]
    assert [a.node_def.name for a in assets] == ["build_raw", "build_raw_2", "build_raw_3"]
    assert all(a.can_subset for a in assets)
    # Each feature's checks live in its own step's multi-asset.
    for a in assets:
        assert {c.asset_key for c in a.check_keys} == set(a.keys)


def test_rejection_skips_only_what_is_below_it_across_steps(
    definitions_folder, store_env, tmp_path
):
    """root -> bad (rejected) -> below; root -> fine; other is independent.

    With one feature per step every edge crosses steps: Dagster does not run the steps below
    the failed one, and the run reports them as skipped with the upstream that caused it."""
    seed_prices(store_env)
    negative = {
        "rule_type": "range",
        "parameters": {"max": 0},  # every close is positive: rejected
        "is_blocking": True,
    }
    definitions_folder.write(feature("root", feature_type="raw"))
    definitions_folder.write(feature("bad", ["root"], validation_rules=[negative]))
    definitions_folder.write(feature("below", ["bad"]))
    definitions_folder.write(feature("fine", ["root"]))
    definitions_folder.write(feature("other", feature_type="raw"))
    settings = Settings.load()
    graph = FeatureGraph.from_settings(settings)
    builds = run_build(graph, settings, code_versions={}, max_features_per_step=1)
    status = {b.feature_name: b.status.value for b in builds}
    assert status == {
        "root": "published",
        "other": "published",
        "fine": "published",
        "bad": "rejected",
        "below": "skipped",
    }
    below = next(b for b in builds if b.feature_name == "below")
    assert below.error == "upstream 'bad' was rejected"
    # One step holding the whole component: the same outcome, decided inside the step.
    again = run_build(graph, settings, code_versions={})
    assert {b.feature_name: b.status.value for b in again} == status


def test_multiprocess_executor_builds_every_step_and_loses_nothing(
    definitions_folder, store_env, tmp_path, monkeypatch
):
    """Steps in processes of their own (one feature per step): every build comes back, a
    rejection still skips exactly what is below it, the registry has one row per feature."""
    seed_prices(store_env)
    negative = {"rule_type": "range", "parameters": {"max": 0}, "is_blocking": True}
    for i in range(4):
        definitions_folder.write(feature(f"close_{i}", feature_type="raw"))
    definitions_folder.write(feature("double_0", ["close_0"]))
    definitions_folder.write(feature("bad", ["close_1"], validation_rules=[negative]))
    definitions_folder.write(feature("below", ["bad"]))
    monkeypatch.setenv("FEATURESTORE_MAX_FEATURES_PER_STEP", "1")
    settings = Settings.load()
    graph = FeatureGraph.from_settings(settings)
    builds = run_build(graph, settings, code_versions={}, executor="multiprocess", max_processes=1)
    status = {b.feature_name: b.status.value for b in builds}
    assert status == {
        **{f"close_{i}": "published" for i in range(4)},
        "double_0": "published",
        "bad": "rejected",
        "below": "skipped",
    }
    # In build order, as the in-process executor reports them.
    assert [b.feature_name for b in builds] == graph.topological_order(status)
    from featurestore_dagster.registry import Registry

    registry = Registry(settings.registry_url)
    for name in status:
        if name != "below":
            (row,) = registry.materializations(name)
            assert row.status == status[name]
