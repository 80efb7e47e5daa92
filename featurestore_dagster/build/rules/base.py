"""What every rule type shares: the check spec, its outcome, and the ``Rule`` interface.

A rule type is one small object that knows three things: how to describe itself
(``describe``), which aggregates of the single audit scan it needs (``plan`` registers them on
the ``Audit`` and returns a finisher), and how to read its outcome from them (the finisher).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from featurestore_dagster.build.audit import Audit
from featurestore_dagster.definitions.models import FeatureDefinition, ValidationRule

SAMPLE_SIZE = 10
SAMPLE_SCAN_ROWS = 100_000


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


Finisher = Callable[[], CheckOutcome]


class Rule:
    """One rule type. Subclasses set ``rule_type`` and implement ``describe`` and ``plan``.

    ``parameters`` passed to both are the rule's typed parameters (``None`` for the implicit
    checks). ``value_rule`` rules read the value column and are skipped, with the reason, when
    it is missing or of a type they cannot judge (see ``value_type_problem``).
    """

    rule_type: ClassVar[str]
    value_rule: ClassVar[bool] = False

    def describe(self, definition: FeatureDefinition, parameters: Any) -> str:
        raise NotImplementedError

    def plan(self, audit: Audit, spec: CheckSpecInfo, parameters: Any, now: datetime) -> Finisher:
        raise NotImplementedError

    def value_type_problem(self, audit: Audit) -> str | None:
        """Why this value rule cannot judge the table's value column, or None."""
        return None


def outcome(spec: CheckSpecInfo, passed: bool, **metadata: Any) -> CheckOutcome:
    return CheckOutcome(spec.name, bool(passed), spec.blocking, spec.description, metadata)


def skipped(spec: CheckSpecInfo, reason: str, **metadata: Any) -> CheckOutcome:
    return outcome(spec, False, skipped=True, reason=reason, **metadata)


def done(result: CheckOutcome) -> Finisher:
    return lambda: result


def missing_columns(audit: Audit, spec: CheckSpecInfo, names: Sequence[str]) -> Finisher | None:
    """A finisher reporting the check as skipped when ``names`` are not all in the table."""
    missing = audit.missing(names)
    if not missing:
        return None
    reason = f"column(s) {', '.join(missing)} missing from the table, so this check cannot run"
    return done(skipped(spec, reason, missing_columns=missing))


def tuple_text(columns: Sequence[str]) -> str:
    return f"({', '.join(columns)})"


def number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON (non-finite floats become None, dates ISO text)."""
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
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
