"""The categorizer, required bumps and ``plan`` as data (pure: no registry, no files)."""

from __future__ import annotations

import pytest

from featurestore_dagster.definitions.fingerprint import fingerprints
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import VersionError
from featurestore_dagster.versioning.plan import (
    ChangeCategory,
    ChangeKind,
    ModelUsage,
    RegisteredFeature,
    build_plan,
    bump_version,
    categorize,
    minimum_version,
    parse_version,
    plan_feature,
)
from tests.conftest import base_definition


def definition(**overrides) -> FeatureDefinition:
    return FeatureDefinition.model_validate(base_definition(**overrides))


def registered(d: FeatureDefinition, status: str | None = None) -> RegisteredFeature:
    data, metadata = fingerprints(d)
    return RegisteredFeature(
        feature_name=d.feature_name,
        status=status or d.status.value,
        current_version=d.version,
        snapshot=d.to_payload(),
        data_fingerprint=data,
        metadata_fingerprint=metadata,
    )


def test_categories_are_ordered():
    assert ChangeCategory.NONE < ChangeCategory.METADATA < ChangeCategory.DATA
    assert ChangeCategory.DATA < ChangeCategory.BREAKING
    assert max(ChangeCategory.METADATA, ChangeCategory.BREAKING) is ChangeCategory.BREAKING
    assert [c.bump for c in ChangeCategory] == [None, "patch", "minor", "major"]


@pytest.mark.parametrize(
    "version,level,expected",
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("1.2.3-rc.1", "patch", "1.2.4"),
    ],
)
def test_bump_version(version, level, expected):
    assert bump_version(version, level) == expected


@pytest.mark.parametrize(
    "category,expected",
    [
        (ChangeCategory.BREAKING, "2.0.0"),
        (ChangeCategory.DATA, "1.3.0"),
        (ChangeCategory.METADATA, "1.2.4"),
        (ChangeCategory.NONE, "1.2.4"),
    ],
)
def test_minimum_version(category, expected):
    assert minimum_version("1.2.3", category) == expected


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "one", "", "1.0.0.0"])
def test_invalid_versions_are_refused(text):
    with pytest.raises(VersionError, match="not a semantic version"):
        parse_version(text, where="feature 'x'")


# (case, overrides, category, changed fields)
CATEGORIZER = [
    ("nothing", {}, ChangeCategory.NONE, []),
    (
        "formatting_only",
        {
            "transformation": {
                "code": "select symbol, date,\n  close as close_price -- same\nfrom raw.prices"
            }
        },
        ChangeCategory.NONE,
        [],
    ),
    ("description", {"description": "x"}, ChangeCategory.METADATA, ["description"]),
    ("owner", {"owner": "ops"}, ChangeCategory.METADATA, ["owner"]),
    ("tags", {"tags": ["price", "eod"]}, ChangeCategory.METADATA, ["tags"]),
    ("schedule", {"schedule": "@daily"}, ChangeCategory.METADATA, ["schedule"]),
    ("status", {"status": "deprecated"}, ChangeCategory.METADATA, ["status"]),
    (
        "code",
        {
            "transformation": {
                "code": "SELECT symbol, date, close + 1 AS close_price FROM raw.prices"
            }
        },
        ChangeCategory.DATA,
        ["transformation.code"],
    ),
    (
        "parameters",
        {
            "transformation": {
                "code": "SELECT symbol, date, close AS close_price FROM raw.prices",
                "parameters": {"unused": 1},
            }
        },
        ChangeCategory.DATA,
        ["transformation.parameters"],
    ),
    (
        "rules",
        {"validation_rules": []},
        ChangeCategory.DATA,
        ["validation_rules"],
    ),
    ("upstream", {"upstream_features": ["other"]}, ChangeCategory.DATA, ["upstream_features"]),
    ("data_type", {"data_type": "integer"}, ChangeCategory.BREAKING, ["data_type"]),
    ("entities", {"entity_columns": []}, ChangeCategory.BREAKING, ["entity_columns"]),
    ("timestamp", {"timestamp_column": "ts"}, ChangeCategory.BREAKING, ["timestamp_column"]),
    (
        "flag_with_change",
        {"breaking_changes": True, "description": "x"},
        ChangeCategory.BREAKING,
        ["description", "breaking_changes"],
    ),
    # The flag describes the version it sits on: setting it alone claims a breaking change.
    ("flag_alone", {"breaking_changes": True}, ChangeCategory.BREAKING, ["breaking_changes"]),
    ("automation", {"automation": "eager"}, ChangeCategory.METADATA, ["automation"]),
    (
        "largest_wins",
        {"description": "x", "validation_rules": []},
        ChangeCategory.DATA,
        ["validation_rules", "description"],
    ),
]


@pytest.mark.parametrize(
    "overrides,category,fields",
    [pytest.param(o, c, f, id=case) for case, o, c, f in CATEGORIZER],
)
def test_categorize(overrides, category, fields):
    result, diffs = categorize(definition(), definition(**overrides))
    assert result is category
    assert [d.field for d in diffs] == fields


def test_a_flag_kept_from_a_breaking_version_does_not_make_the_next_edit_breaking():
    old = definition(breaking_changes=True)
    category, diffs = categorize(old, definition(breaking_changes=True, description="x"))
    assert category is ChangeCategory.METADATA
    assert [d.field for d in diffs] == ["description"]


def test_plan_explains_a_flag_set_on_an_unchanged_definition():
    item = plan_feature(definition(breaking_changes=True), registered(definition()))
    assert (item.change, item.category, item.ok) == (ChangeKind.CHANGED, "breaking", False)
    assert item.minimum_version == "2.0.0"
    assert "only breaking_changes changed" in item.reason
    assert "featurestore bump close_price" in item.reason


def test_diff_keeps_the_readable_values():
    new = definition(transformation={"code": "SELECT symbol, date, 1.0 AS close_price FROM t.x"})
    _, diffs = categorize(definition(), new)
    code = next(d for d in diffs if d.field == "transformation.code")
    assert code.old == "SELECT symbol, date, close AS close_price FROM raw.prices"
    assert code.new == "SELECT symbol, date, 1.0 AS close_price FROM t.x"
    assert code.category == "data"


def test_python_source_change_is_seen_through_the_registered_fingerprint(tmp_path, monkeypatch):
    (tmp_path / "vs_mod.py").write_text("def build(conn, inputs):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    d = definition(transformation={"transformation_type": "python", "code": "vs_mod:build"})
    category, diffs = categorize(d, d, old_data_fingerprint="registered-over-older-source")
    assert category is ChangeCategory.DATA
    assert [x.field for x in diffs] == ["transformation.source"]


def test_plan_new_unchanged_changed():
    current = definition()
    assert plan_feature(current, None).change is ChangeKind.NEW
    assert plan_feature(current, registered(current)).change is ChangeKind.UNCHANGED

    edited = definition(version="1.1.0", validation_rules=[])
    item = plan_feature(edited, registered(current))
    assert (item.change, item.category, item.ok) == (ChangeKind.CHANGED, "data", True)
    assert (item.required_bump, item.minimum_version) == ("minor", "1.1.0")


@pytest.mark.parametrize(
    "declared,overrides,smallest,phrase",
    [
        ("1.0.0", {"description": "x"}, "1.0.1", "registered and immutable"),
        ("1.0.1", {"validation_rules": []}, "1.1.0", "too small"),
        ("1.9.0", {"data_type": "integer"}, "2.0.0", "too small"),
        ("0.9.0", {"description": "x"}, "1.0.1", "too small"),
    ],
)
def test_plan_refuses_small_versions_and_names_the_smallest(declared, overrides, smallest, phrase):
    item = plan_feature(definition(version=declared, **overrides), registered(definition()))
    assert not item.ok
    assert item.minimum_version == smallest
    assert phrase in item.reason
    assert f"use version {smallest}" in item.reason
    assert "close_price" in item.reason


def test_version_only_change_needs_a_higher_version():
    item = plan_feature(definition(version="1.0.1"), registered(definition()))
    assert (item.change, item.category, item.ok) == (ChangeKind.CHANGED, "none", True)
    lower = plan_feature(definition(version="0.1.0"), registered(definition()))
    assert not lower.ok


def chain() -> FeatureGraph:
    """close_price -> daily_return -> signal."""
    return FeatureGraph.from_definitions(
        [
            definition(),
            definition(
                feature_name="daily_return",
                sources=[],
                upstream_features=["close_price"],
                transformation={
                    "code": "SELECT symbol, date, close_price AS daily_return"
                    " FROM features.close_price"
                },
            ),
            definition(
                feature_name="signal",
                sources=[],
                upstream_features=["daily_return"],
                transformation={
                    "code": "SELECT symbol, date, daily_return AS signal FROM features.daily_return"
                },
            ),
        ],
        check_python=False,
    )


def test_build_plan_impact_and_removed():
    graph = chain()
    state = {d.feature_name: registered(d) for d in graph}
    breaking = definition(version="2.0.0", data_type="integer")
    state["close_price"] = registered(definition())
    state["gone"] = registered(definition(feature_name="gone"))
    calls = []

    def usage(names):
        calls.append(set(names))
        return [ModelUsage(used_by_model="ranker", model_version="3", feature_name="signal")]

    graph = FeatureGraph.from_definitions(
        [breaking, *[d for d in chain() if d.feature_name != "close_price"]], check_python=False
    )
    plan = build_plan(graph, state, production_usage=usage, window_days=30)
    item = plan["close_price"]
    assert item.category == "breaking"
    assert item.downstream_features == ["daily_return", "signal"]
    assert [u.used_by_model for u in item.production_models] == ["ranker"]
    assert item.needs_consent and plan.needing_consent == [item]
    assert calls == [{"close_price", "daily_return", "signal"}]
    assert plan["gone"].change is ChangeKind.REMOVED
    assert plan["signal"].change is ChangeKind.UNCHANGED
    assert [f.feature_name for f in plan.pending] == ["close_price", "gone"]


def test_no_usage_lookup_without_breaking_changes():
    graph = chain()
    state = {d.feature_name: registered(d) for d in graph}

    def usage(names):
        raise AssertionError("not needed")

    plan = build_plan(graph, state, production_usage=usage)
    assert not plan.pending and not plan.needing_consent
