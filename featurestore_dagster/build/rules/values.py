"""Value rules: ``range``, ``null_check``, ``outlier``, ``allowed_values``.

Each reads the value column; ``evaluate_checks`` skips them (with the reason) when the
column is missing or of a type the rule cannot judge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from featurestore_dagster.build.audit import Audit, finite
from featurestore_dagster.build.rules.base import (
    SAMPLE_SCAN_ROWS,
    SAMPLE_SIZE,
    CheckOutcome,
    CheckSpecInfo,
    Finisher,
    Rule,
    jsonable,
    number_text,
    outcome,
)
from featurestore_dagster.definitions.models import FeatureDefinition


class RangeRule(Rule):
    rule_type = "range"
    value_rule = True

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        value = definition.value_column
        if p.min is not None and p.max is not None:
            return f"{value} within [{number_text(p.min)}, {number_text(p.max)}]"
        if p.min is not None:
            return f"{value} >= {number_text(p.min)}"
        return f"{value} <= {number_text(p.max)}"

    def value_type_problem(self, audit: Audit) -> str | None:
        return (
            None if audit.numeric else f"range needs a numeric value column, not {audit.value_type}"
        )

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        value, outside = audit.value, []
        if p.min is not None:
            outside.append(f"{value} < CAST({audit.param(p.min)} AS DOUBLE)")
        if p.max is not None:
            outside.append(f"{value} > CAST({audit.param(p.max)} AS DOUBLE)")
        failing = audit.agg(f"count(*) FILTER (WHERE {' OR '.join(outside)})")

        def finish() -> CheckOutcome:
            return outcome(
                spec,
                audit[failing] == 0,
                failing_rows=audit[failing],
                row_count=audit[audit.rows],
                non_null_rows=audit[audit.non_null],
                min_allowed=p.min,
                max_allowed=p.max,
                observed_min=finite(audit[audit.min]),
                observed_max=finite(audit[audit.max]),
            )

        return finish


class NullCheckRule(Rule):
    rule_type = "null_check"
    value_rule = True

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        return f"{definition.value_column} null fraction <= {number_text(p.max_null_fraction)}"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        def finish() -> CheckOutcome:
            rows = audit[audit.rows]
            nulls = rows - audit[audit.non_null]
            fraction = nulls / rows if rows else None
            metadata = {"null_rows": nulls, "row_count": rows, "null_fraction": fraction}
            if audit.nan_as_null:
                metadata["nan_rows"] = audit[audit.nan_rows]
            metadata["max_null_fraction"] = p.max_null_fraction
            return outcome(spec, fraction is None or fraction <= p.max_null_fraction, **metadata)

        return finish


class OutlierRule(Rule):
    rule_type = "outlier"
    value_rule = True

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        test = "|z|" if p.method == "zscore" else "IQR distance"
        return (
            f"{definition.value_column} {p.method} outliers"
            f" ({test} > {number_text(p.effective_threshold)})"
            f" <= {number_text(p.max_outlier_fraction)} of values"
        )

    def value_type_problem(self, audit: Audit) -> str | None:
        if audit.numeric:
            return None
        return f"outlier needs a numeric value column, not {audit.value_type}"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        threshold = p.effective_threshold
        if p.method == "zscore":
            # DuckDB 1.5 raises on a non-finite input to stddev_samp; a NaN/inf value means no
            # usable spread (no bounds), as before.
            v = audit.value
            spread = audit.agg(
                f"CASE WHEN count(*) FILTER (WHERE NOT isfinite({v}::DOUBLE)) = 0"
                f" THEN stddev_samp(CASE WHEN isfinite({v}::DOUBLE) THEN {v} END) END"
            )
        else:
            spread = audit.agg(f"quantile_cont({audit.value}, [0.25, 0.75])")

        def finish() -> CheckOutcome:
            values, bounds = audit[audit.non_null], None
            if p.method == "zscore":
                mean, std = finite(audit[audit.mean]), finite(audit[spread])
                stats: dict[str, Any] = {"mean": mean, "stddev": std}
                if mean is not None and std:  # no spread (or one value): nothing is an outlier
                    bounds = (mean - threshold * std, mean + threshold * std)
            else:
                q1, q3 = (finite(q) for q in audit[spread] or (None, None))
                iqr = None if q1 is None or q3 is None else q3 - q1
                stats = {"q1": q1, "q3": q3, "iqr": iqr}
                if iqr is not None:
                    bounds = (q1 - threshold * iqr, q3 + threshold * iqr)
            low, high = finite(audit[audit.min]), finite(audit[audit.max])
            outliers = 0
            # Observed min and max inside the bounds need no counting scan (the usual case).
            if bounds and (low is None or high is None or low < bounds[0] or high > bounds[1]):
                value = audit.value
                where = f"{value} < CAST($low AS DOUBLE) OR {value} > CAST($high AS DOUBLE)"
                sql = f"SELECT count(*) FILTER (WHERE {where}) FROM {audit.table}"
                outliers = audit.query(sql, {"low": bounds[0], "high": bounds[1]})[0][0]
            fraction = outliers / values if values else 0.0
            return outcome(
                spec,
                fraction <= p.max_outlier_fraction,
                method=p.method,
                threshold=threshold,
                outlier_rows=outliers,
                non_null_rows=values,
                outlier_fraction=fraction,
                max_outlier_fraction=p.max_outlier_fraction,
                lower_bound=bounds[0] if bounds else None,
                upper_bound=bounds[1] if bounds else None,
                observed_min=low,
                observed_max=high,
                **stats,
            )

        return finish


class AllowedValuesRule(Rule):
    rule_type = "allowed_values"
    value_rule = True

    def describe(self, definition: FeatureDefinition, p: Any) -> str:
        shown = ", ".join(repr(v) for v in p.values[:SAMPLE_SIZE])
        more = f", ... ({len(p.values)} values)" if len(p.values) > SAMPLE_SIZE else ""
        return f"{definition.value_column} in [{shown}{more}]"

    def value_type_problem(self, audit: Audit) -> str | None:
        if audit.value_family is not None:
            return None
        return f"allowed_values cannot compare values of type {audit.value_type}"

    def plan(self, audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
        value = audit.value
        candidates = [comparable(v, audit.value_family) for v in p.values]
        # A DECIMAL column compares in DOUBLE so an allowed 1.234 never rounds onto a stored 1.23.
        target = "DOUBLE" if audit.value_type.startswith("DECIMAL") else audit.value_type
        references = [audit.param(v) for v in candidates if v is not None]
        listed = [f"TRY_CAST({ref} AS {target})" for ref in references]
        # coalesce: an allowed value that does not convert to the column type is NULL in the list.
        allowed = f"coalesce({value} IN ({', '.join(listed)}), false)" if listed else "false"
        violation = f"{value} IS NOT NULL AND NOT {allowed}"
        failing = audit.agg(f"count(*) FILTER (WHERE {violation})")
        params = audit.params_of(references)

        def finish() -> CheckOutcome:
            metadata: dict[str, Any] = {
                "failing_rows": audit[failing],
                "row_count": audit[audit.rows],
                "allowed_values": list(p.values),
            }
            if audit[failing]:
                # Grouping every failing row of a high-cardinality column costs a full hash
                # aggregate (1.2 s on 10M rows); the first 100,000 failing rows show what is wrong.
                sql = (
                    f"SELECT value, count(*) AS n FROM (SELECT {value} AS value FROM {audit.table}"
                    f" WHERE {violation} LIMIT {SAMPLE_SCAN_ROWS}) AS failing"
                    f" GROUP BY 1 ORDER BY n DESC, 1 LIMIT {SAMPLE_SIZE}"
                )
                metadata["unexpected_values"] = [
                    {"value": jsonable(v), "rows": n} for v, n in audit.query(sql, params)
                ]
                if audit[failing] > SAMPLE_SCAN_ROWS:
                    metadata["unexpected_values_counted_in"] = (
                        f"first {SAMPLE_SCAN_ROWS} failing rows"
                    )
            return outcome(spec, audit[failing] == 0, **metadata)

        return finish


def comparable(value: Any, family: str | None) -> Any:
    """An allowed value as something a column of ``family`` can equal; None when it never can.

    DuckDB rounds when casting 1.5 to an integer type, and True casts to 1, so numeric columns
    get exact numbers here instead.
    """
    if family not in ("integer", "float"):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if family == "integer":
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        return value
    return float(value)
