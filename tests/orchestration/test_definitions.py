"""Dagster mapping: specs, checks, schedules, status handling."""

from __future__ import annotations

import dagster as dg
import pytest

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.orchestration.definitions import build_definitions
from featurestore_dagster.orchestration.translator import FeatureTranslator, build_specs
from tests.conftest import REPO_ROOT, base_definition


def graph_of(*payloads):
    return FeatureGraph.from_definitions([FeatureDefinition.model_validate(p) for p in payloads])


def child(name="double_price", parent="close_price", **overrides):
    payload = base_definition(
        feature_name=name,
        feature_type="derived",
        upstream_features=[parent],
        sources=[],
        transformation={
            "code": f"SELECT symbol, date, {parent} * 2 AS {name} FROM features.{parent}"
        },
    )
    payload.update(overrides)
    return payload


@pytest.fixture
def specs():
    graph = graph_of(
        base_definition(owner="quant@example.com", tags=["price", "daily"]),
        child(duckdb_table="analytics.double_price", owner="risk-team"),
    )
    features, checks, sources = build_specs(graph)
    return {s.key.to_user_string(): s for s in features}, checks, sources


@pytest.mark.parametrize(
    "key,attribute,expected",
    [
        ("features/close_price", "group_name", "raw"),
        ("analytics/double_price", "group_name", "derived"),
        ("features/close_price", "owners", ["quant@example.com"]),
        ("analytics/double_price", "owners", ["team:risk-team"]),
        ("features/close_price", "tags", {"price": "", "daily": "", "status": "active"}),
        ("features/close_price", "kinds", {"duckdb", "sql"}),
        ("features/close_price", "code_version", "1.0.0"),
        ("features/close_price", "description", "Daily close"),
    ],
)
def test_spec_attributes(specs, key, attribute, expected):
    features, _, _ = specs
    value = getattr(features[key], attribute)
    if attribute == "tags":  # Dagster stores kinds as dagster/kind/* tags too
        value = {k: v for k, v in value.items() if not k.startswith("dagster/kind/")}
    assert (set(value) if isinstance(expected, set) else value) == expected


def test_deps_follow_upstreams_and_sources(specs):
    features, _, sources = specs
    assert {d.asset_key for d in features["analytics/double_price"].deps} == {
        dg.AssetKey(["features", "close_price"])
    }
    assert {d.asset_key for d in features["features/close_price"].deps} == {
        dg.AssetKey(["raw", "prices"])
    }
    assert [s.key for s in sources] == [dg.AssetKey(["raw", "prices"])]


def test_metadata_carries_definition(specs):
    features, _, _ = specs
    metadata = features["features/close_price"].metadata
    assert metadata["data_type"] == "float"
    assert metadata["entity_columns"] == "symbol"
    assert metadata["dagster/table_name"] == "features.close_price"
    assert [c.name for c in metadata["dagster/column_schema"].columns] == [
        "symbol",
        "date",
        "close_price",
    ]
    assert metadata["version"] == "1.0.0"
    assert "raw.prices" in metadata["transformation"].value


def test_checks_include_implicit_blocking_ones(specs):
    _, checks, _ = specs
    by_asset = {}
    for check in checks:
        by_asset.setdefault(check.asset_key.to_user_string(), {})[check.name] = check.blocking
    assert by_asset["features/close_price"] == {"schema": True, "unique_key": True, "range": True}


def test_repeated_rules_are_suffixed():
    graph = graph_of(
        base_definition(
            validation_rules=[
                {"rule_type": "range", "parameters": {"min": 0}},
                {"rule_type": "range", "parameters": {"max": 1e6}},
                {"rule_type": "null_check", "name": "no_gaps"},
            ]
        )
    )
    _, checks, _ = build_specs(graph)
    assert [c.name for c in checks] == ["schema", "unique_key", "range", "range_2", "no_gaps"]


def test_code_versions_come_from_the_translator():
    graph = graph_of(base_definition(version="1.2.0"))
    features, _, _ = build_specs(graph, FeatureTranslator(code_versions={"close_price": "1.1.0"}))
    assert features[0].code_version == "1.1.0"


def test_archived_is_not_compiled_and_draft_is_not_scheduled(tmp_path):
    graph = graph_of(
        base_definition(schedule="0 22 * * 1-5"),
        child(status="draft"),
        child(name="triple_price", status="active"),
        child(name="old_price", status="archived"),
    )
    defs = build_definitions(graph, Settings.load(definitions_path=tmp_path))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "features/old_price" not in keys
    assert {"features/close_price", "features/double_price", "raw/prices"} <= keys
    schedules = list(defs.schedules)
    assert len(schedules) == 1 and schedules[0].cron_schedule == "0 22 * * 1-5"
    job = defs.resolve_job_def(schedules[0].job.name)
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert selected == {"features/close_price", "features/triple_price"}


def test_draft_feature_schedule_is_ignored(tmp_path):
    graph = graph_of(base_definition(status="draft", schedule="0 1 * * *"))
    defs = build_definitions(graph, Settings.load(definitions_path=tmp_path))
    assert list(defs.schedules or []) == []


def test_workspace_code_location_loads_the_example(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("FEATURESTORE_DEFINITIONS", raising=False)
    from featurestore_dagster.orchestration.definitions import code_location

    defs = code_location()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "features/stock_rsi_14d" in keys and "raw/daily_prices" in keys
    rsi = graph.get(dg.AssetKey(["features", "stock_rsi_14d"]))
    assert dg.AssetKey(["features", "stock_daily_close"]) in rsi.parent_keys
    dg.Definitions.validate_loadable(defs)
