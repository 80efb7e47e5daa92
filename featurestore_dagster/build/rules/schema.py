"""The implicit, blocking ``schema`` check: columns and value type exactly as declared."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from featurestore_dagster.build.audit import Audit
from featurestore_dagster.build.rules.base import CheckSpecInfo, Finisher, Rule, outcome
from featurestore_dagster.definitions.models import DataType, FeatureDefinition

# What each declared data_type accepts, by the family of the DuckDB column type.
ACCEPTED_TYPES = {
    DataType.FLOAT: "FLOAT, DOUBLE or DECIMAL",
    DataType.INTEGER: "an integer type (TINYINT ... HUGEINT, signed or unsigned)",
    DataType.STRING: "VARCHAR",
    DataType.BOOLEAN: "BOOLEAN",
    DataType.TIMESTAMP: "TIMESTAMP (any precision or time zone) or DATE",
}


class SchemaCheck(Rule):
    rule_type = "schema"

    def describe(self, definition: FeatureDefinition, parameters: Any) -> str:
        columns = ", ".join(definition.key_columns + [definition.value_column])
        return (
            f"columns exactly {columns}; {definition.value_column} is {definition.data_type.value}"
        )

    def plan(self, audit: Audit, spec: CheckSpecInfo, parameters: Any, now: datetime) -> Finisher:
        return lambda: self._outcome(audit, spec)  # DESCRIBE already told everything

    @staticmethod
    def _outcome(audit: Audit, spec: CheckSpecInfo):
        definition = audit.definition
        expected = definition.key_columns + [definition.value_column]
        wanted = {name.lower() for name in expected}
        missing = audit.missing(expected)
        unexpected = [name for name in audit.columns if name.lower() not in wanted]
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected column(s): {', '.join(unexpected)}")
        accepted = ACCEPTED_TYPES[definition.data_type]
        if audit.value_type is not None and audit.value_family != definition.data_type.value:
            problems.append(
                f"value column {definition.value_column} is {audit.value_type},"
                f" but data_type {definition.data_type.value} needs {accepted}"
            )
        return outcome(
            spec,
            not problems,
            expected_columns=expected,
            actual_columns=dict(audit.columns),
            value_column=definition.value_column,
            expected_value_type=f"{definition.data_type.value}: {accepted}",
            actual_value_type=audit.value_type,
            missing_columns=missing,
            unexpected_columns=unexpected,
            problem="; ".join(problems) or None,
        )
