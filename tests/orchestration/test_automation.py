"""``automation: eager | on_cron``: Dagster automation conditions gated on blocking checks.

The gate is shown with real runs in one Dagster instance and Dagster's own evaluator: after a
run that publishes one upstream feature and rejects the other, ``eager()`` alone would launch
the downstream feature; ours does not.
"""

from __future__ import annotations

import dagster as dg
import pytest

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError
from featurestore_dagster.orchestration.automation import SENSOR_NAME
from featurestore_dagster.orchestration.definitions import (
    RESOURCE_KEY,
    FeatureBuildResource,
    build_assets,
    build_definitions,
)
from featurestore_dagster.orchestration.translator import FeatureTranslator
from tests.conftest import base_definition


def inline(name: str, value: float, **overrides):
    """A feature computed from an inline value (no source table), range-checked <= 10."""
    return base_definition(
        feature_name=name,
        sources=[],
        transformation={
            "code": f"SELECT 'A' AS symbol, DATE '2024-01-02' AS date, {{{{ value }}}}::DOUBLE AS {name}",
            "parameters": {"value": value},
        },
        validation_rules=[{"rule_type": "range", "parameters": {"max": 10}, "is_blocking": True}],
        **overrides,
    )


def downstream(**overrides):
    return base_definition(
        feature_name="signal",
        feature_type="derived",
        upstream_features=["gated", "healthy"],
        sources=[],
        transformation={
            "code": "SELECT symbol, date, g.gated + h.healthy AS signal"
            " FROM features.gated AS g JOIN features.healthy AS h USING (symbol, date)"
        },
        **overrides,
    )


def graph_of(*payloads):
    return FeatureGraph.from_definitions([FeatureDefinition.model_validate(p) for p in payloads])


@pytest.mark.parametrize(
    "automation,schedule,label",
    [
        ("eager", None, "eager_unless_blocking_check_failed"),
        ("on_cron", "0 6 * * *", "on_cron_unless_blocking_check_failed"),
    ],
)
def test_automation_maps_to_a_gated_condition(tmp_path, automation, schedule, label):
    graph = graph_of(base_definition(automation=automation, schedule=schedule))
    defs = build_definitions(graph, Settings.load(definitions_path=tmp_path))
    node = defs.resolve_asset_graph().get(dg.AssetKey(["features", "close_price"]))
    condition = node.automation_condition
    assert condition.get_label() == label
    labels = {c.get_label() for c in condition.children}
    assert "all_deps_blocking_checks_passed" in labels
    assert [s.name for s in defs.sensors] == [SENSOR_NAME]
    # on_cron replaces the schedule: the cron is not also a schedule rebuilding it twice
    assert list(defs.schedules or []) == []


def test_no_automation_no_sensor_and_drafts_never_automated(tmp_path):
    graph = graph_of(
        base_definition(),
        base_definition(feature_name="draft_one", status="draft", automation="eager"),
    )
    defs = build_definitions(graph, Settings.load(definitions_path=tmp_path))
    nodes = defs.resolve_asset_graph()
    assert nodes.get(dg.AssetKey(["features", "draft_one"])).automation_condition is None
    assert nodes.get(dg.AssetKey(["features", "close_price"])).automation_condition is None
    assert list(defs.sensors or []) == []


def test_on_cron_needs_a_schedule(definitions_folder):
    path = definitions_folder.write(base_definition(automation="on_cron"))
    with pytest.raises(DefinitionError) as caught:
        FeatureGraph.load(definitions_folder.path)
    (issue,) = caught.value.issues
    assert (issue.file, issue.feature, issue.field) == (path, "close_price", "automation")
    assert "add a 'schedule' cron" in issue.message


def test_unknown_automation_is_refused():
    with pytest.raises(Exception, match="automation"):
        FeatureDefinition.model_validate(base_definition(automation="hourly"))


def test_eager_does_not_launch_past_a_failed_blocking_check(tmp_path):
    settings = Settings.load(
        definitions_path=tmp_path,
        lake_catalog=f"sqlite:{tmp_path / 'lake.sqlite'}",
        lake_data=tmp_path / "lake",
        registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
    )
    resource = FeatureBuildResource(settings, record_materializations=False)

    def graph(gated_value: float, healthy_value: float, gate: bool = True):
        signal = downstream(automation="eager")
        graph = graph_of(inline("gated", gated_value), inline("healthy", healthy_value), signal)
        assets = build_assets(graph, FeatureTranslator())
        if not gate:  # the same asset with Dagster's plain eager() instead
            assets = [
                a.map_asset_specs(
                    lambda spec: (
                        spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
                        if spec.key.path[-1] == "signal"
                        else spec
                    )
                )
                if isinstance(a, dg.AssetsDefinition)
                else a
                for a in assets
            ]
        return dg.Definitions(assets=assets, resources={RESOURCE_KEY: resource})

    def build(defs):
        return dg.materialize(
            defs.assets, instance=instance, resources=defs.resources, raise_on_error=False
        )

    signal = dg.AssetKey(["features", "signal"])
    with dg.instance_for_test() as instance:
        first = graph(1.0, 2.0)
        assert build(first).success  # everything published and checked
        cursor = dg.evaluate_automation_conditions(first, instance=instance).cursor

        second = graph(50.0, 3.0)  # gated is rejected (range), healthy is published
        result = build(second)
        assert not result.success
        published = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert published == {"healthy"}  # signal was skipped below the rejected feature

        gated = dg.evaluate_automation_conditions(second, instance=instance, cursor=cursor)
        assert gated.get_requested_partitions(signal) == set()
        plain = dg.evaluate_automation_conditions(
            graph(50.0, 3.0, gate=False), instance=instance, cursor=cursor
        )
        assert plain.get_num_requested(signal) == 1  # what the gate prevents
