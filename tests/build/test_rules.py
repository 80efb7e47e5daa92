"""The rule table: one small object per rule type, covering every rule type a definition has."""

from __future__ import annotations

import pytest

from featurestore_dagster.build.checks import check_specs
from featurestore_dagster.build.rules import IMPLICIT, RULES, Rule
from featurestore_dagster.definitions.models import FeatureDefinition, RuleType

PARAMETERS = {
    RuleType.RANGE: {"min": 0, "max": 100},
    RuleType.NULL_CHECK: {"max_null_fraction": 0.1},
    RuleType.OUTLIER: {"method": "iqr"},
    RuleType.UNIQUE: {},
    RuleType.ALLOWED_VALUES: {"values": [1, 2]},
    RuleType.ROW_COUNT: {"min": 5},
    RuleType.FRESHNESS: {"max_age": "3d"},
    RuleType.CUSTOM_SQL: {"sql": "SELECT * FROM {{ table }} WHERE stock_rsi_14d < 0"},
}


def definition(rule_type: RuleType) -> FeatureDefinition:
    return FeatureDefinition.model_validate(
        {
            "feature_name": "stock_rsi_14d",
            "feature_type": "technical_indicator",
            "data_type": "float",
            "entity_columns": ["symbol"],
            "timestamp_column": "date",
            "transformation": {"code": "SELECT 1"},
            "validation_rules": [
                {"rule_type": rule_type.value, "parameters": PARAMETERS[rule_type]}
            ],
        }
    )


def test_every_rule_type_has_exactly_one_rule_object():
    assert set(RULES) == set(RuleType)
    for rule_type, rule in RULES.items():
        assert isinstance(rule, Rule)
        assert rule.rule_type == rule_type.value


@pytest.mark.parametrize(
    "rule_type,expected",
    [
        (RuleType.RANGE, "stock_rsi_14d within [0, 100]"),
        (RuleType.NULL_CHECK, "stock_rsi_14d null fraction <= 0.1"),
        (RuleType.OUTLIER, "stock_rsi_14d iqr outliers (IQR distance > 3) <= 0.001 of values"),
        (RuleType.UNIQUE, "one row per (symbol, date)"),
        (RuleType.ALLOWED_VALUES, "stock_rsi_14d in [1, 2]"),
        (RuleType.ROW_COUNT, "row count >= 5"),
        (RuleType.FRESHNESS, "newest date at most 3d old"),
        (RuleType.CUSTOM_SQL, "custom SQL returns at most 0 failing rows"),
    ],
)
def test_each_rule_describes_itself(rule_type, expected):
    specs = check_specs(definition(rule_type))
    assert [s.name for s in specs] == ["schema", "unique_key", rule_type.value]
    assert specs[-1].description == expected


def test_implicit_checks_come_first_and_block():
    specs = check_specs(definition(RuleType.RANGE))
    assert [s.rule_type for s in specs[: len(IMPLICIT)]] == ["schema", "unique_key"]
    assert all(s.blocking for s in specs[: len(IMPLICIT)])
    assert (
        specs[0].description
        == "columns exactly symbol, date, stock_rsi_14d; stock_rsi_14d is float"
    )
