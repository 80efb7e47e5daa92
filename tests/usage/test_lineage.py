"""Lineage from the one FeatureGraph (get_feature_lineage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import UnknownFeatureError
from featurestore_dagster.usage.lineage import build_lineage, lineage_members
from tests.conftest import (
    base_definition,
    seed_usage_registry,
    sqlite_usage_engine,
    usage_graph,
    usage_host,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    engine = sqlite_usage_engine(tmp_path / "registry.db")
    seed_usage_registry(engine)
    yield usage_host(usage_graph(), engine)
    engine.dispose()


def test_direct_lineage(store):
    result = store.get_feature_lineage("daily_return")
    assert result.feature_name == "daily_return"
    assert result.current_version == "1.0.0"
    assert result.registered and result.status == "active"
    assert result.upstream_features == ["close_price"]
    assert result.downstream_features == ["momentum_signal"]
    assert result.all_upstream == [] and result.all_downstream == []
    assert result.direct_dependents_count == 1
    assert result.total_dependents_count == 1
    assert result.sources == [] and result.all_sources == []
    assert set(result.nodes) == {"close_price", "daily_return", "momentum_signal"}


def test_recursive_lineage(store):
    root = store.get_feature_lineage("close_price", recursive=True)
    assert root.current_version == "1.1.0"
    assert root.upstream_features == [] and root.all_upstream == []
    assert root.downstream_features == [
        "daily_return",
        "draft_feature",
        "old_signal",
        "rsi_14d",
    ]
    assert root.all_downstream == [
        "daily_return",
        "draft_feature",
        "momentum_signal",
        "old_signal",
        "rsi_14d",
    ]
    assert (root.direct_dependents_count, root.total_dependents_count) == (4, 5)
    assert root.sources == ["raw.prices"]

    leaf = store.get_feature_lineage("momentum_signal", recursive=True)
    assert leaf.all_upstream == ["close_price", "daily_return", "rsi_14d"]
    assert leaf.all_sources == ["raw.prices"]
    assert leaf.total_dependents_count == 0
    assert leaf.nodes["close_price"].version == "1.1.0"


def test_unregistered_feature_shows_its_declared_version(store):
    result = store.get_feature_lineage("draft_feature")
    assert (result.current_version, result.registered, result.status) == (
        "1.0.0",
        False,
        "draft",
    )
    assert result.nodes["close_price"].registered


def test_lineage_lists_the_models_that_used_it(store):
    store.record_model_usage(
        used_by_model="ranker",
        model_version="1",
        environment="production",
        features={"rsi_14d": 0.3},
        usage_timestamp=T0,
    )
    store.record_model_usage(
        used_by_model="ranker",
        model_version="1",
        environment="production",
        features={"rsi_14d": 0.2},
        usage_timestamp=T0 + timedelta(days=1),
    )
    store.record_model_usage(
        used_by_model="sizer",
        model_version="0.9",
        environment="dev",
        features={"rsi_14d": 0.2},
        usage_timestamp=T0 - timedelta(days=1),
    )
    models = store.get_feature_lineage("rsi_14d").consuming_models
    assert [(m.used_by_model, m.model_version, m.environment, m.usage_count) for m in models] == [
        ("ranker", "1", "production", 2),
        ("sizer", "0.9", "dev", 1),
    ]
    assert models[0].last_used_at == T0 + timedelta(days=1)
    assert models[0].feature_versions == ["1.0.0"]
    assert store.get_feature_lineage("close_price").consuming_models == []


def test_unknown_feature(store):
    with pytest.raises(UnknownFeatureError, match="rsi_14d"):
        store.get_feature_lineage("rsi_14")


def test_lineage_json_has_the_api_field_names(store):
    data = store.get_feature_lineage("rsi_14d", recursive=True).model_dump(mode="json")
    for field in (
        "feature_name",
        "current_version",
        "upstream_features",
        "downstream_features",
        "all_upstream",
        "all_downstream",
        "direct_dependents_count",
        "total_dependents_count",
    ):
        assert field in data


# --- the assembly is the graph's answer ---------------------------------------------------------


def synthetic_graph(layers: int, width: int) -> FeatureGraph:
    """``layers`` x ``width`` features; each depends on two features of the layer above.
    Built unvalidated: the lineage code must not care how the graph was checked."""
    definitions = []
    for layer in range(layers):
        for index in range(width):
            name = f"f_{layer}_{index}"
            upstream = (
                []
                if layer == 0
                else sorted({f"f_{layer - 1}_{index}", f"f_{layer - 1}_{(index + 1) % width}"})
            )
            definitions.append(
                FeatureDefinition.model_validate(
                    base_definition(
                        feature_name=name,
                        upstream_features=upstream,
                        sources=["raw.prices"] if layer == 0 else [],
                    )
                )
            )
    return FeatureGraph(definitions)


@pytest.mark.parametrize("name", ["f_0_0", "f_3_2", "f_7_9"])
def test_build_lineage_matches_the_graph_closures(name):
    graph = synthetic_graph(layers=8, width=10)
    result = build_lineage(graph, name, recursive=True)
    assert result.all_upstream == sorted(graph.upstream_closure(name))
    assert result.all_downstream == sorted(graph.downstream_closure(name))
    assert result.total_dependents_count == len(graph.downstream_closure(name))
    assert set(result.nodes) == {name, *result.all_upstream, *result.all_downstream}
    assert set(lineage_members(graph, name, recursive=True)) == set(result.nodes)


def test_lineage_on_a_10000_feature_graph():
    graph = synthetic_graph(layers=100, width=100)
    middle = build_lineage(graph, "f_50_0", recursive=True)
    # Layer 50 reaches every feature of layers 0..49 above and 51..99 below (the window
    # widens by one per layer and wraps after 100).
    assert len(middle.all_upstream) == sum(min(100, d + 1) for d in range(1, 51))
    assert len(middle.all_downstream) == sum(min(100, d + 1) for d in range(1, 50))
    top = build_lineage(graph, "f_0_0", recursive=False)
    assert top.downstream_features == ["f_1_0", "f_1_99"]
    assert top.all_downstream == []
    assert top.total_dependents_count == len(graph.downstream_closure("f_0_0"))
