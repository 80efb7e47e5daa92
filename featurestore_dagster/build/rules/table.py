"""Table rules: ``row_count``, ``freshness``, ``custom_sql``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import duckdb

from featurestore_dagster.build.audit import Audit, type_family
from featurestore_dagster.build.rules.base import (
    CheckOutcome,
    CheckSpecInfo,
    Finisher,
    Rule,
    done,
    jsonable,
    missing_columns,
    outcome,
    skipped,
)
from featurestore_dagster.build.sandbox import NotOneStatementError, execute_one
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import SqlError, check_one_select, quote_identifier


class RowCountRule(Rule):
    rule_type = "row_count"

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        if p.max is None:
            return f"row count >= {p.min}"
        return f"row count within [{p.min}, {p.max}]"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        def finish() -> CheckOutcome:
            rows = audit[audit.rows]
            passed = rows >= p.min and (p.max is None or rows <= p.max)
            return outcome(spec, passed, row_count=rows, min_rows=p.min, max_rows=p.max)

        return finish


class FreshnessRule(Rule):
    rule_type = "freshness"

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        return f"newest {definition.timestamp_column} at most {p.max_age} old"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        name = audit.definition.timestamp_column
        skip = missing_columns(audit, spec, [name])
        if skip is not None:
            return skip
        column_type = audit.columns[audit.column(name)]
        if type_family(column_type) != "timestamp":
            reason = f"timestamp column {name} is {column_type}, not a TIMESTAMP or DATE"
            return done(skipped(spec, reason, timestamp_type=column_type))
        newest = f"max({quote_identifier(audit.column(name))})"
        epoch, text = audit.agg(f"epoch({newest})"), audit.agg(f"CAST({newest} AS VARCHAR)")

        def finish() -> CheckOutcome:
            metadata: dict[str, Any] = {
                "timestamp_column": name,
                "newest_timestamp": audit[text],
                "checked_at": now.isoformat(),
                "max_age": p.max_age,
                "max_age_seconds": p.max_age_seconds,
            }
            if audit[epoch] is None:
                return outcome(spec, False, **metadata, problem="no timestamps: the table is empty")
            age = now.timestamp() - float(audit[epoch])
            metadata.update(age_seconds=round(age, 3), age=duration_text(age))
            return outcome(spec, age <= p.max_age_seconds, **metadata)

        return finish


class CustomSqlRule(Rule):
    rule_type = "custom_sql"

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        return f"custom SQL returns at most {p.max_failing_rows} failing rows"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        return lambda: self._outcome(audit, spec, p)  # its own query, after the scan

    @staticmethod
    def _outcome(audit: Audit, spec: CheckSpecInfo, p: Any) -> CheckOutcome:
        sql = re.sub(r"\{\{\s*table\s*\}\}", lambda _: audit.table, p.sql).strip().rstrip(";")
        metadata: dict[str, Any] = {"sql": sql, "max_failing_rows": p.max_failing_rows}
        try:
            # Checked at load; DuckDB's own parser checks again that the text pasted into the
            # count below is exactly one SELECT (a rule that closes the parenthesis is not).
            check_one_select(sql)
        except SqlError as error:
            return outcome(spec, False, **metadata, error=str(error))
        try:
            counted = execute_one(audit.conn, f"SELECT count(*) FROM (\n{sql}\n) AS failing")
            failing = counted.fetchall()[0][0]
            metadata["failing_rows"] = failing
            if failing > p.max_failing_rows:
                cursor = execute_one(audit.conn, f"SELECT * FROM (\n{sql}\n) AS failing LIMIT 5")
                names = [d[0] for d in cursor.description]
                metadata["failing_sample"] = [
                    {n: jsonable(v) for n, v in zip(names, row, strict=True)}
                    for row in cursor.fetchall()
                ]
        except (duckdb.Error, NotOneStatementError) as error:
            return outcome(spec, False, **metadata, error=str(error).splitlines()[0])
        return outcome(spec, failing <= p.max_failing_rows, **metadata)


def duration_text(seconds: float) -> str:
    if seconds < 0:
        return f"{duration_text(-seconds)} in the future"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or f"{secs}s"
