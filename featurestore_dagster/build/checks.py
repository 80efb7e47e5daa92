"""Asset checks of a feature: which ones it compiles into, and auditing a table for all of them.

``check_specs`` lists the checks: the implicit blocking ``schema`` and ``unique_key`` checks,
then one per validation rule. ``evaluate_checks`` audits a table for all of them in one scan
(``audit.Audit``) and returns plain outcomes plus a value profile; the Dagster side turns those
into ``AssetCheckResult`` and materialization metadata, so nothing here imports Dagster. What
each rule type describes, needs and concludes lives in ``rules/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

from featurestore_dagster.build.audit import Audit, TableProfile, quote_table_name
from featurestore_dagster.build.rules import (
    IMPLICIT,
    RULES,
    SCHEMA_CHECK,
    UNIQUE_KEY_CHECK,
    CheckOutcome,
    CheckSpecInfo,
    Finisher,
)
from featurestore_dagster.build.rules.base import done, missing_columns, outcome, skipped
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import MaterializationError

if TYPE_CHECKING:  # the proof module parses SQL; importing sqlglot is left to who uses it
    from featurestore_dagster.definitions.uniqueness import UniqueKeyProof

__all__ = [
    "SCHEMA_CHECK",
    "UNIQUE_KEY_CHECK",
    "CheckOutcome",
    "CheckSpecInfo",
    "TableProfile",
    "check_specs",
    "evaluate_checks",
]


def check_specs(definition: FeatureDefinition) -> list[CheckSpecInfo]:
    """The asset checks of ``definition``: ``schema``, ``unique_key``, then one per rule.

    Example:
        >>> [s.name for s in check_specs(rsi)]  # two range rules, one null_check
        ['schema', 'unique_key', 'range', 'range_2', 'null_check']
    """
    specs = [
        CheckSpecInfo(
            check.rule_type, check.rule_type, True, check.describe(definition, None), None
        )
        for check in IMPLICIT
    ]
    used = {spec.name for spec in specs}
    for rule in definition.validation_rules:
        base = rule.name or rule.rule_type.value
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{base}_{number}"
        used.add(name)
        description = RULES[rule.rule_type].describe(definition, rule.typed_parameters)
        specs.append(CheckSpecInfo(name, rule.rule_type.value, rule.is_blocking, description, rule))
    return specs


def evaluate_checks(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    table: str,
    now: datetime | None = None,
    *,
    unique_key_proof: UniqueKeyProof | None = None,
) -> tuple[list[CheckOutcome], TableProfile]:
    """Audit ``table`` for every check of ``definition``, in the order of ``check_specs``.

    A custom_sql query that fails is reported as a failed check, and DuckDB aborts any
    transaction a failed statement ran in: audit a definition with custom_sql rules outside an
    explicit transaction (the others' check statements do not fail).

    Args:
        conn: the DuckDB connection that sees ``table``.
        definition: the feature whose checks run.
        table: the table to audit, ``schema.table`` or already quoted (``"features"."t"``).
        now: the time freshness is judged at (default: now, UTC). Naive datetimes and
            TIMESTAMP columns are read as UTC; a DATE counts as midnight at its start.
        unique_key_proof: a proof from the SQL that ``table`` has a unique, non-NULL key
            (``definitions.uniqueness``): the ``unique_key`` check then passes as "proven"
            without its distinct-key scan. Only for a table the proven SQL just built.

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
    finishers = [_plan(audit, spec, now, unique_key_proof) for spec in specs]
    audit.scan()
    if audit.saw_nan():
        # NaN is the largest double in DuckDB, so max() = NaN exactly when some value is NaN.
        known = audit.distinct_counts
        audit = Audit(conn, definition, table_sql, columns, nan_as_null=True, known=known)
        finishers = [_plan(audit, spec, now, unique_key_proof) for spec in specs]
        audit.scan()
    return [finish() for finish in finishers], audit.profile()


_IMPLICIT_BY_TYPE = {check.rule_type: check for check in IMPLICIT}


def _plan(
    audit: Audit, spec: CheckSpecInfo, now: datetime, proof: UniqueKeyProof | None
) -> Finisher:
    if proof is not None and spec.rule_type == UNIQUE_KEY_CHECK:
        skip = missing_columns(audit, spec, audit.definition.key_columns)
        if skip is not None:
            return skip
        return done(
            outcome(
                spec,
                True,
                method="proven",
                columns=list(audit.definition.key_columns),
                proven_from=proof.upstream,
                reason=proof.reason,
            )
        )
    if spec.rule is None:
        return _IMPLICIT_BY_TYPE[spec.rule_type].plan(audit, spec, None, now)
    rule = RULES[spec.rule.rule_type]
    if rule.value_rule:
        skip = missing_columns(audit, spec, [audit.definition.value_column])
        if skip is not None:
            return skip
        problem = rule.value_type_problem(audit)
        if problem is not None:
            return done(skipped(spec, problem, value_type=audit.value_type))
    return rule.plan(audit, spec, spec.rule.typed_parameters, now)
