"""Validation rules: one small class per rule type, kept in one table.

Adding a rule type is one class (``describe`` + ``plan``, see ``base.Rule``) and one entry in
``RULES`` (plus its parameter model in ``definitions.models``). ``IMPLICIT`` are the checks
every feature gets, both blocking.
"""

from featurestore_dagster.build.rules.base import (
    CheckOutcome,
    CheckSpecInfo,
    Finisher,
    Rule,
)
from featurestore_dagster.build.rules.keys import UniqueKeyCheck, UniqueRule
from featurestore_dagster.build.rules.schema import SchemaCheck
from featurestore_dagster.build.rules.table import CustomSqlRule, FreshnessRule, RowCountRule
from featurestore_dagster.build.rules.values import (
    AllowedValuesRule,
    NullCheckRule,
    OutlierRule,
    RangeRule,
)
from featurestore_dagster.definitions.models import RuleType

SCHEMA_CHECK = SchemaCheck.rule_type
UNIQUE_KEY_CHECK = UniqueKeyCheck.rule_type

#: The implicit checks, in the order they are listed before the rules.
IMPLICIT: tuple[Rule, ...] = (SchemaCheck(), UniqueKeyCheck())

#: Every rule type a definition may use, by ``rule_type``.
RULES: dict[RuleType, Rule] = {
    RuleType.RANGE: RangeRule(),
    RuleType.NULL_CHECK: NullCheckRule(),
    RuleType.OUTLIER: OutlierRule(),
    RuleType.UNIQUE: UniqueRule(),
    RuleType.ALLOWED_VALUES: AllowedValuesRule(),
    RuleType.ROW_COUNT: RowCountRule(),
    RuleType.FRESHNESS: FreshnessRule(),
    RuleType.CUSTOM_SQL: CustomSqlRule(),
}

__all__ = [
    "IMPLICIT",
    "RULES",
    "SCHEMA_CHECK",
    "UNIQUE_KEY_CHECK",
    "CheckOutcome",
    "CheckSpecInfo",
    "Finisher",
    "Rule",
]
