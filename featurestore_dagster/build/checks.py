"""Validation rules as SQL over a staging table (SPEC section 2, the audit of write-audit-publish).

``check_specs`` lists the asset checks a definition compiles into: the implicit blocking
``schema`` and ``unique_key`` checks, then one check per validation rule. ``evaluate_checks``
audits a table for all of them and returns plain outcomes plus a value profile; the Dagster
side turns those into ``AssetCheckResult`` and materialization metadata, so nothing here
imports Dagster.

The SQL and its cost model live in ``audit.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from featurestore_dagster.build.audit import (
    Audit,
    TableProfile,
    finite,
    quote_table_name,
    type_family,
)
from featurestore_dagster.definitions.models import (
    DataType,
    FeatureDefinition,
    RuleType,
    ValidationRule,
)
from featurestore_dagster.definitions.sql import quote_identifier
from featurestore_dagster.errors import MaterializationError

SCHEMA_CHECK = "schema"
UNIQUE_KEY_CHECK = "unique_key"
SAMPLE_SIZE = 10
SAMPLE_SCAN_ROWS = 100_000

# What each declared data_type accepts, by the family of the DuckDB column type.
_ACCEPTED_TYPES = {
    DataType.FLOAT: "FLOAT, DOUBLE or DECIMAL",
    DataType.INTEGER: "an integer type (TINYINT ... HUGEINT, signed or unsigned)",
    DataType.STRING: "VARCHAR",
    DataType.BOOLEAN: "BOOLEAN",
    DataType.TIMESTAMP: "TIMESTAMP (any precision or time zone) or DATE",
}


@dataclass(frozen=True)
class CheckSpecInfo:
    """One asset check a definition compiles into.

    Args:
        name: ``schema``, ``unique_key``, or the rule's ``name`` / ``rule_type`` (suffixed
            ``_2``, ``_3`` when the same name repeats).
        rule_type: ``schema``, ``unique_key`` or the rule's ``RuleType`` value.
        blocking: implicit checks always block; rules block when ``is_blocking``.
        description: what the check asserts, e.g. ``stock_rsi_14d within [0, 100]``.
        rule: the validation rule (None for the implicit checks).
    """

    name: str
    rule_type: str
    blocking: bool
    description: str
    rule: ValidationRule | None


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: pass/fail plus what it observed (plain JSON-able values)."""

    name: str
    passed: bool
    blocking: bool
    description: str
    metadata: dict[str, Any]


# --- check specs (pure) -----------------------------------------------------------------------


def check_specs(definition: FeatureDefinition) -> list[CheckSpecInfo]:
    """The asset checks of ``definition``: ``schema``, ``unique_key``, then one per rule.

    Example:
        >>> [s.name for s in check_specs(rsi)]  # two range rules, one null_check
        ['schema', 'unique_key', 'range', 'range_2', 'null_check']
    """
    keys = _tuple_text(definition.key_columns)
    columns = ", ".join(definition.key_columns + [definition.value_column])
    specs = [
        CheckSpecInfo(
            SCHEMA_CHECK,
            SCHEMA_CHECK,
            True,
            f"columns exactly {columns}; {definition.value_column} is {definition.data_type.value}",
            None,
        ),
        CheckSpecInfo(
            UNIQUE_KEY_CHECK, UNIQUE_KEY_CHECK, True, f"one row per {keys}, no NULL keys", None
        ),
    ]
    used = {SCHEMA_CHECK, UNIQUE_KEY_CHECK}
    for rule in definition.validation_rules:
        base = rule.name or rule.rule_type.value
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{base}_{number}"
        used.add(name)
        description = _describe_rule(definition, rule)
        specs.append(CheckSpecInfo(name, rule.rule_type.value, rule.is_blocking, description, rule))
    return specs


def _describe_rule(definition: FeatureDefinition, rule: ValidationRule) -> str:
    value, p = definition.value_column, rule.typed_parameters
    match rule.rule_type:
        case RuleType.RANGE:
            if p.min is not None and p.max is not None:
                return f"{value} within [{_num(p.min)}, {_num(p.max)}]"
            if p.min is not None:
                return f"{value} >= {_num(p.min)}"
            return f"{value} <= {_num(p.max)}"
        case RuleType.NULL_CHECK:
            return f"{value} null fraction <= {_num(p.max_null_fraction)}"
        case RuleType.OUTLIER:
            test = "|z|" if p.method == "zscore" else "IQR distance"
            return (
                f"{value} {p.method} outliers ({test} > {_num(p.effective_threshold)})"
                f" <= {_num(p.max_outlier_fraction)} of values"
            )
        case RuleType.UNIQUE:
            return f"one row per {_tuple_text(p.columns or definition.key_columns)}"
        case RuleType.ALLOWED_VALUES:
            shown = ", ".join(repr(v) for v in p.values[:SAMPLE_SIZE])
            more = f", ... ({len(p.values)} values)" if len(p.values) > SAMPLE_SIZE else ""
            return f"{value} in [{shown}{more}]"
        case RuleType.ROW_COUNT:
            if p.max is None:
                return f"row count >= {p.min}"
            return f"row count within [{p.min}, {p.max}]"
        case RuleType.FRESHNESS:
            return f"newest {definition.timestamp_column} at most {p.max_age} old"
        case _:
            return f"custom SQL returns at most {p.max_failing_rows} failing rows"


# --- evaluation -------------------------------------------------------------------------------


def evaluate_checks(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    table: str,
    now: datetime | None = None,
) -> tuple[list[CheckOutcome], TableProfile]:
    """Audit ``table`` for every check of ``definition``, in the order of ``check_specs``.

    Run it outside an explicit transaction: a custom_sql query that fails is reported as a
    failed check, and DuckDB aborts any transaction a failed statement ran in.

    Args:
        conn: the DuckDB connection that sees ``table``.
        definition: the feature whose checks run.
        table: the table to audit, ``schema.table`` or already quoted (``"features"."t"``).
        now: the time freshness is judged at (default: now, UTC). Naive datetimes and
            TIMESTAMP columns are read as UTC; a DATE counts as midnight at its start.

    Returns:
        One outcome per check spec, and the value profile of the table.

    Raises:
        MaterializationError: the table does not exist or cannot be audited.
    """
    table_sql = quote_table_name(table)
    try:
        columns = {row[0]: row[1] for row in conn.execute(f"DESCRIBE {table_sql}").fetchall()}
    except duckdb.Error as error:
        raise MaterializationError(f"cannot audit table {table}: {error}") from error
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    specs = check_specs(definition)

    audit = Audit(conn, definition, table_sql, columns)
    finishers = [_plan(audit, spec, now) for spec in specs]
    audit.scan()
    if audit.saw_nan():
        # NaN is the largest double in DuckDB, so max() = NaN exactly when some value is NaN.
        known = audit.distinct_counts
        audit = Audit(conn, definition, table_sql, columns, nan_as_null=True, known=known)
        finishers = [_plan(audit, spec, now) for spec in specs]
        audit.scan()
    return [finish() for finish in finishers], audit.profile()


Finisher = Callable[[], CheckOutcome]


def _plan(audit: Audit, spec: CheckSpecInfo, now: datetime) -> Finisher:
    definition = audit.definition
    if spec.rule is None:
        if spec.rule_type == SCHEMA_CHECK:
            return lambda: _schema_outcome(audit, spec)
        return _plan_duplicates(audit, spec, definition.key_columns, reject_null_keys=True)
    p = spec.rule.typed_parameters
    match spec.rule.rule_type:
        case RuleType.UNIQUE:
            columns = p.columns or definition.key_columns
            return _plan_duplicates(audit, spec, columns, reject_null_keys=False)
        case RuleType.ROW_COUNT:
            return lambda: _row_count_outcome(audit, spec, p)
        case RuleType.FRESHNESS:
            return _plan_freshness(audit, spec, p, now)
        case RuleType.CUSTOM_SQL:
            return lambda: _custom_sql_outcome(audit, spec, p)
    skip = _skip_value_rule(audit, spec)
    if skip is not None:
        return lambda: skip
    match spec.rule.rule_type:
        case RuleType.RANGE:
            return _plan_range(audit, spec, p)
        case RuleType.NULL_CHECK:
            return lambda: _null_outcome(audit, spec, p)
        case RuleType.OUTLIER:
            return _plan_outlier(audit, spec, p)
        case _:
            return _plan_allowed_values(audit, spec, p)


def _outcome(spec: CheckSpecInfo, passed: bool, **metadata: Any) -> CheckOutcome:
    return CheckOutcome(spec.name, bool(passed), spec.blocking, spec.description, metadata)


def _skipped(spec: CheckSpecInfo, reason: str, **metadata: Any) -> CheckOutcome:
    return _outcome(spec, False, skipped=True, reason=reason, **metadata)


def _missing_columns(audit: Audit, spec: CheckSpecInfo, names: Sequence[str]):
    missing = audit.missing(names)
    if not missing:
        return None
    reason = f"column(s) {', '.join(missing)} missing from the table, so this check cannot run"
    return _skipped(spec, reason, missing_columns=missing)


# --- implicit checks --------------------------------------------------------------------------


def _schema_outcome(audit: Audit, spec: CheckSpecInfo) -> CheckOutcome:
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
    accepted = _ACCEPTED_TYPES[definition.data_type]
    if audit.value_type is not None and audit.value_family != definition.data_type.value:
        problems.append(
            f"value column {definition.value_column} is {audit.value_type},"
            f" but data_type {definition.data_type.value} needs {accepted}"
        )
    return _outcome(
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


def _plan_duplicates(
    audit: Audit, spec: CheckSpecInfo, columns: Sequence[str], *, reject_null_keys: bool
) -> Finisher:
    skip = _missing_columns(audit, spec, columns)
    if skip is not None:
        return lambda: skip
    quoted = [quote_identifier(audit.column(name)) for name in columns]
    distinct = audit.distinct_keys(quoted)
    non_null = [audit.agg(f"count({column})") for column in quoted]

    def finish() -> CheckOutcome:
        rows = audit[audit.rows]
        null_keys = {name: rows - audit[i] for name, i in zip(columns, non_null, strict=True)}
        duplicates = {"duplicate_rows": 0, "duplicate_key_count": 0, "duplicate_keys": []}
        if audit[distinct] < rows:  # maybe a hash collision: confirm exactly
            duplicates = audit.cached(tuple(quoted), lambda: _duplicate_keys(audit, columns))
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
        return _outcome(spec, not problems, **metadata)

    return finish


def _duplicate_keys(audit: Audit, columns: Sequence[str]) -> dict[str, Any]:
    quoted = ", ".join(quote_identifier(audit.column(name)) for name in columns)
    rows = audit.query(
        f"SELECT {quoted}, __rows, count(*) OVER (), sum(__rows - 1) OVER ()"
        f" FROM (SELECT {quoted}, count(*) AS __rows FROM {audit.table}"
        f" GROUP BY {quoted} HAVING count(*) > 1) AS duplicated"
        f" ORDER BY __rows DESC, {quoted} LIMIT {SAMPLE_SIZE}"
    )
    width = len(columns)
    sample = [
        {**{c: _jsonable(v) for c, v in zip(columns, row[:width], strict=True)}, "rows": row[width]}
        for row in rows
    ]
    return {
        "duplicate_rows": int(rows[0][width + 2]) if rows else 0,
        "duplicate_key_count": int(rows[0][width + 1]) if rows else 0,
        "duplicate_keys": sample,
    }


# --- value rules ------------------------------------------------------------------------------


def _skip_value_rule(audit: Audit, spec: CheckSpecInfo) -> CheckOutcome | None:
    skip = _missing_columns(audit, spec, [audit.definition.value_column])
    if skip is not None:
        return skip
    kind = spec.rule.rule_type
    if kind in (RuleType.RANGE, RuleType.OUTLIER) and not audit.numeric:
        reason = f"{kind.value} needs a numeric value column, not {audit.value_type}"
    elif kind == RuleType.ALLOWED_VALUES and audit.value_family is None:
        reason = f"allowed_values cannot compare values of type {audit.value_type}"
    else:
        return None
    return _skipped(spec, reason, value_type=audit.value_type)


def _plan_range(audit: Audit, spec: CheckSpecInfo, p: Any) -> Finisher:
    value, outside = audit.value, []
    if p.min is not None:
        outside.append(f"{value} < CAST({audit.param(p.min)} AS DOUBLE)")
    if p.max is not None:
        outside.append(f"{value} > CAST({audit.param(p.max)} AS DOUBLE)")
    failing = audit.agg(f"count(*) FILTER (WHERE {' OR '.join(outside)})")

    def finish() -> CheckOutcome:
        return _outcome(
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


def _null_outcome(audit: Audit, spec: CheckSpecInfo, p: Any) -> CheckOutcome:
    rows = audit[audit.rows]
    nulls = rows - audit[audit.non_null]
    fraction = nulls / rows if rows else None
    metadata = {"null_rows": nulls, "row_count": rows, "null_fraction": fraction}
    if audit.nan_as_null:
        metadata["nan_rows"] = audit[audit.nan_rows]
    metadata["max_null_fraction"] = p.max_null_fraction
    return _outcome(spec, fraction is None or fraction <= p.max_null_fraction, **metadata)


def _plan_outlier(audit: Audit, spec: CheckSpecInfo, p: Any) -> Finisher:
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
            where = f"{audit.value} < CAST($low AS DOUBLE) OR {audit.value} > CAST($high AS DOUBLE)"
            sql = f"SELECT count(*) FILTER (WHERE {where}) FROM {audit.table}"
            outliers = audit.query(sql, {"low": bounds[0], "high": bounds[1]})[0][0]
        fraction = outliers / values if values else 0.0
        return _outcome(
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


def _plan_allowed_values(audit: Audit, spec: CheckSpecInfo, p: Any) -> Finisher:
    value = audit.value
    candidates = [_comparable(v, audit.value_family) for v in p.values]
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
                {"value": _jsonable(v), "rows": n} for v, n in audit.query(sql, params)
            ]
            if audit[failing] > SAMPLE_SCAN_ROWS:
                metadata["unexpected_values_counted_in"] = f"first {SAMPLE_SCAN_ROWS} failing rows"
        return _outcome(spec, audit[failing] == 0, **metadata)

    return finish


# --- table rules ------------------------------------------------------------------------------


def _row_count_outcome(audit: Audit, spec: CheckSpecInfo, p: Any) -> CheckOutcome:
    rows = audit[audit.rows]
    passed = rows >= p.min and (p.max is None or rows <= p.max)
    return _outcome(spec, passed, row_count=rows, min_rows=p.min, max_rows=p.max)


def _plan_freshness(audit: Audit, spec: CheckSpecInfo, p: Any, now: datetime) -> Finisher:
    name = audit.definition.timestamp_column
    skip = _missing_columns(audit, spec, [name])
    if skip is not None:
        return lambda: skip
    column_type = audit.columns[audit.column(name)]
    if type_family(column_type) != "timestamp":
        reason = f"timestamp column {name} is {column_type}, not a TIMESTAMP or DATE"
        return lambda: _skipped(spec, reason, timestamp_type=column_type)
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
            return _outcome(spec, False, **metadata, problem="no timestamps: the table is empty")
        age = now.timestamp() - float(audit[epoch])
        metadata.update(age_seconds=round(age, 3), age=_duration_text(age))
        return _outcome(spec, age <= p.max_age_seconds, **metadata)

    return finish


def _custom_sql_outcome(audit: Audit, spec: CheckSpecInfo, p: Any) -> CheckOutcome:
    sql = re.sub(r"\{\{\s*table\s*\}\}", lambda _: audit.table, p.sql).strip().rstrip(";")
    metadata: dict[str, Any] = {"sql": sql, "max_failing_rows": p.max_failing_rows}
    try:
        failing = audit.query(f"SELECT count(*) FROM (\n{sql}\n) AS failing")[0][0]
        metadata["failing_rows"] = failing
        if failing > p.max_failing_rows:
            cursor = audit.conn.execute(f"SELECT * FROM (\n{sql}\n) AS failing LIMIT 5")
            names = [d[0] for d in cursor.description]
            metadata["failing_sample"] = [
                {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
                for row in cursor.fetchall()
            ]
    except duckdb.Error as error:
        return _outcome(spec, False, **metadata, error=str(error).splitlines()[0])
    return _outcome(spec, failing <= p.max_failing_rows, **metadata)


# --- helpers ----------------------------------------------------------------------------------


def _comparable(value: Any, family: str | None) -> Any:
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


def _tuple_text(columns: Sequence[str]) -> str:
    return f"({', '.join(columns)})"


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _duration_text(seconds: float) -> str:
    if seconds < 0:
        return f"{_duration_text(-seconds)} in the future"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or f"{secs}s"
