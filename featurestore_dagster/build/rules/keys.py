"""Key rules: the implicit ``unique_key`` check and the ``unique`` rule share one engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from featurestore_dagster.build.audit import Audit
from featurestore_dagster.build.rules.base import (
    SAMPLE_SIZE,
    CheckOutcome,
    CheckSpecInfo,
    Finisher,
    Rule,
    jsonable,
    missing_columns,
    outcome,
    tuple_text,
)
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import quote_identifier


class UniqueKeyCheck(Rule):
    """Implicit, blocking: one row per entity + timestamp key, and no NULL key."""

    rule_type = "unique_key"

    def describe(self, definition: FeatureDefinition, parameters: Any) -> str:
        return f"one row per {tuple_text(definition.key_columns)}, no NULL keys"

    def plan(self, audit: Audit, spec: CheckSpecInfo, parameters: Any, now: datetime) -> Finisher:
        return plan_duplicates(audit, spec, audit.definition.key_columns, reject_null_keys=True)


class UniqueRule(Rule):
    """``unique``: duplicate keys over ``columns`` (default entity + timestamp)."""

    rule_type = "unique"

    def describe(self, definition: FeatureDefinition, parameters: Any) -> str:
        return f"one row per {tuple_text(parameters.columns or definition.key_columns)}"

    def plan(self, audit: Audit, spec: CheckSpecInfo, parameters: Any, now: datetime) -> Finisher:
        columns = parameters.columns or audit.definition.key_columns
        return plan_duplicates(audit, spec, columns, reject_null_keys=False)


def plan_duplicates(
    audit: Audit, spec: CheckSpecInfo, columns: Sequence[str], *, reject_null_keys: bool
) -> Finisher:
    skip = missing_columns(audit, spec, columns)
    if skip is not None:
        return skip
    quoted = [quote_identifier(audit.column(name)) for name in columns]
    distinct = audit.distinct_keys(quoted)
    non_null = [audit.agg(f"count({column})") for column in quoted]

    def finish() -> CheckOutcome:
        rows = audit[audit.rows]
        null_keys = {name: rows - audit[i] for name, i in zip(columns, non_null, strict=True)}
        duplicates = {"duplicate_rows": 0, "duplicate_key_count": 0, "duplicate_keys": []}
        if audit[distinct] < rows:  # maybe a hash collision: confirm exactly
            duplicates = audit.cached(tuple(quoted), lambda: duplicate_keys(audit, columns))
        nulls_bad = reject_null_keys and any(null_keys.values())
        metadata: dict[str, Any] = {"columns": list(columns), "row_count": rows, **duplicates}
        if reject_null_keys:
            metadata["null_key_rows"] = null_keys
        problems = []
        if duplicates["duplicate_rows"]:
            problems.append(f"{duplicates['duplicate_key_count']} key(s) appear more than once")
        if nulls_bad:
            bad = ", ".join(f"{k} ({n} rows)" for k, n in null_keys.items() if n)
            problems.append(f"NULL in key column(s) {bad}")
        metadata["problem"] = "; ".join(problems) or None
        return outcome(spec, not problems, **metadata)

    return finish


def duplicate_keys(audit: Audit, columns: Sequence[str]) -> dict[str, Any]:
    """The exact duplicate count and a sample of duplicated keys (one GROUP BY)."""
    quoted = ", ".join(quote_identifier(audit.column(name)) for name in columns)
    rows = audit.query(
        f"SELECT {quoted}, __rows, count(*) OVER (), sum(__rows - 1) OVER ()"
        f" FROM (SELECT {quoted}, count(*) AS __rows FROM {audit.table}"
        f" GROUP BY {quoted} HAVING count(*) > 1) AS duplicated"
        f" ORDER BY __rows DESC, {quoted} LIMIT {SAMPLE_SIZE}"
    )
    width = len(columns)
    sample = [
        {**{c: jsonable(v) for c, v in zip(columns, row[:width], strict=True)}, "rows": row[width]}
        for row in rows
    ]
    return {
        "duplicate_rows": int(rows[0][width + 2]) if rows else 0,
        "duplicate_key_count": int(rows[0][width + 1]) if rows else 0,
        "duplicate_keys": sample,
    }
