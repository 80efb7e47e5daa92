"""Checking usage records before anything is written (pure: no database, no printing).

``expand_usage`` turns model runs and single records into one dict per record;
``validate_usage`` checks and normalizes them against the graph. Problems are collected and
raised together as one ``UsageError`` (an unknown feature name as ``UnknownFeatureError``).
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import semver

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.errors import UnknownFeatureError, UsageError
from featurestore_dagster.registry.models import as_utc
from featurestore_dagster.registry.usage import USAGE_COLUMNS
from featurestore_dagster.usage.models import Environment

ENVIRONMENTS = tuple(e.value for e in Environment)  # in display order: dev, staging, production
RECORD_FIELDS = frozenset(USAGE_COLUMNS)
RUN_FIELDS = frozenset(
    {
        "used_by_model",
        "model_version",
        "environment",
        "features",
        "correlations",
        "feature_versions",
        "execution_id",
        "execution_duration_ms",
        "usage_timestamp",
    }
)
_TEXT_LIMITS = {"used_by_model": 255, "model_version": 64, "execution_id": 255}


def expand_usage(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Model runs (mappings with ``features``) and single records -> one dict per record.

    Shape problems are collected and raised together.

    Raises:
        UsageError: an item that is neither, unknown fields, correlations or versions for
            features the run does not list.
    """
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    if isinstance(items, Mapping):
        items = [items]
    for index, item in enumerate(items):
        where = f"item {index}"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected an object, got {type(item).__name__}")
        elif "features" in item:
            records.extend(_expand_run(item, where, problems))
        else:
            unknown = sorted(set(item) - RECORD_FIELDS)
            if unknown:
                problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
            records.append({key: item.get(key) for key in USAGE_COLUMNS})
    raise_problems(problems)
    if not records:
        raise UsageError("no usage records given")
    return records


def _expand_run(run: Mapping[str, Any], where: str, problems: list[str]) -> list[dict[str, Any]]:
    unknown = sorted(set(run) - RUN_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
    features = run.get("features")
    if isinstance(features, Mapping):
        importance = dict(features)
    elif isinstance(features, Iterable) and not isinstance(features, str | bytes):
        importance = dict.fromkeys(features)
    else:
        problems.append(f"{where}: 'features' must map feature names to importances")
        return []
    if not importance:
        problems.append(f"{where}: 'features' is empty; a model run uses at least one feature")
    extras = {}
    for key in ("correlations", "feature_versions"):
        value = run.get(key) or {}
        if not isinstance(value, Mapping):
            problems.append(f"{where}: '{key}' must map feature names to values")
            value = {}
        stray = sorted(set(value) - set(importance))
        if stray:
            problems.append(
                f"{where}: '{key}' names feature(s) not in 'features': {', '.join(map(str, stray))}"
            )
        extras[key] = value
    base = dict.fromkeys(USAGE_COLUMNS)
    base.update({key: run[key] for key in USAGE_COLUMNS if key in run})
    return [
        {
            **base,
            "feature_name": name,
            "feature_importance": value,
            "correlation_with_target": extras["correlations"].get(name),
            "feature_version": extras["feature_versions"].get(name),
        }
        for name, value in importance.items()
    ]


def validate_usage(
    records: list[dict[str, Any]], graph: FeatureGraph, *, now: datetime
) -> list[dict[str, Any]]:
    """Check and normalize records (everything that needs no database).

    Returns rows ready to insert (UTC timestamps, floats). ``feature_version`` stays None
    where the current registered version is to be used.

    Raises:
        UnknownFeatureError: the first feature name no definition has.
        UsageError: every other problem, together.
    """
    problems: list[str] = []
    runs: dict[tuple, dict[str, Any]] = {}  # the fields a model run shares, checked once
    rows = []
    for record in records:
        if len(record) != len(USAGE_COLUMNS):
            record = {key: record.get(key) for key in USAGE_COLUMNS}
        name = record.get("feature_name")
        if not isinstance(name, str) or not name:
            problems.append(f"feature_name must be a non-empty string, got {_short(name)}")
            continue
        if text_problem(name):
            problems.append(f"feature_name {_short(name)} {text_problem(name)}")
            continue
        if name not in graph:
            raise UnknownFeatureError(name, graph.names)
        shared = _run_key(record)
        try:
            run = runs.get(shared)
        except TypeError:  # an unhashable value: certainly a problem, reported below
            run = None
        if run is None:
            run = _validate_run(record, now, problems)
            try:
                runs[shared] = run
            except TypeError:
                pass
        rows.append(_validate_feature(record, run, problems))
    raise_problems(problems)
    return rows


_RUN_COLUMNS = (
    "used_by_model",
    "model_version",
    "environment",
    "execution_id",
    "execution_duration_ms",
    "usage_timestamp",
)
_run_key = operator.itemgetter(*_RUN_COLUMNS)  # records always carry every column


@functools.lru_cache(maxsize=4096)
def _is_version(text: str) -> bool:
    return semver.Version.is_valid(text)


def _validate_run(record: Mapping[str, Any], now: datetime, problems: list[str]) -> dict:
    """The fields one model run shares, normalized; problems are reported once per run."""
    model = record.get("used_by_model")
    named = isinstance(model, str) and model and not text_problem(model) and len(model) <= 255
    where = f"model '{model}'" if named else "usage record"

    def problem(message: str) -> None:
        problems.append(f"{where}: {message}")

    run = {key: record.get(key) for key in _RUN_COLUMNS}
    for key, limit in _TEXT_LIMITS.items():
        value = run[key]
        if key != "used_by_model" and isinstance(value, int) and not isinstance(value, bool):
            value = run[key] = str(value)  # model_version 3 / execution_id 42 from JSON
        if value is None and key == "execution_id":
            continue
        if not isinstance(value, str) or not value.strip():
            problem(f"{key} must be a non-empty string, got {_short(value)}")
        elif len(value) > limit:
            problem(f"{key} is longer than {limit} characters")
        elif text_problem(value):
            problem(f"{key} {text_problem(value)}")
    environment = getattr(run["environment"], "value", run["environment"])
    if environment not in ENVIRONMENTS:
        problem(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}")
    run["environment"] = environment
    duration = run["execution_duration_ms"] = _number(
        run["execution_duration_ms"], "execution_duration_ms", problem
    )
    if duration is not None and duration < 0:
        problem(f"execution_duration_ms must be >= 0, got {duration:g}")
    run["usage_timestamp"] = _timestamp(run["usage_timestamp"], now, problem)
    return run


def _validate_feature(record: Mapping[str, Any], run: dict[str, Any], problems: list[str]) -> dict:
    where = f"feature '{record['feature_name']}'"
    model = run["used_by_model"]
    if isinstance(model, str) and not text_problem(model) and len(model) <= 255:
        where += f" in model '{model}'"

    def problem(message: str) -> None:
        problems.append(f"{where}: {message}")

    importance = _number(record.get("feature_importance"), "feature_importance", problem)
    if importance is not None and importance < 0:
        problem(f"feature_importance must be >= 0, got {importance:g}")
    correlation = _number(record.get("correlation_with_target"), "correlation_with_target", problem)
    if correlation is not None and not -1.0 <= correlation <= 1.0:
        problem(f"correlation_with_target must be within [-1, 1], got {correlation:g}")
    version = record.get("feature_version")
    if version is not None and (not isinstance(version, str) or not _is_version(version)):
        problem(f"feature_version {_short(version)} is not a semantic version (MAJOR.MINOR.PATCH)")
    return {
        **run,
        "feature_name": record["feature_name"],
        "feature_version": version,
        "feature_importance": importance,
        "correlation_with_target": correlation,
    }


def _number(value: Any, field: str, problem) -> float | None:
    if value is None:
        return None
    if type(value) is float:  # the common case, without the ABC check below
        if math.isfinite(value):
            return value
        problem(f"{field} must be a finite number, got {value}")
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        problem(f"{field} must be a number, got {_short(value)}")
        return None
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer from JSON
        problem(f"{field} must be a number within ±1.8e308, got {_short(value)}")
        return None
    if not math.isfinite(number):
        problem(f"{field} must be a finite number, got {number}")
        return None
    return number


def _timestamp(value: Any, now: datetime, problem) -> datetime:
    if value is None:
        return now
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            problem(f"usage_timestamp {value!r} is not an ISO 8601 date-time")
            return now
    if not isinstance(value, datetime):
        problem(f"usage_timestamp must be a date-time, got {_short(value)}")
        return now
    try:
        return as_utc(value)
    except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time
        problem(f"usage_timestamp {value.isoformat()} is out of range once converted to UTC")
        return now


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 400-digit number, a huge list)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # int too large for repr, or a cyclic value
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text_problem(value: Any) -> str | None:
    """Why a string cannot be stored as text (a lone surrogate from JSON ``"\\ud800"``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def raise_problems(problems: list[str]) -> None:
    """One ``UsageError`` listing every problem (each once); nothing when there is none."""
    problems = list(dict.fromkeys(problems))  # a run's problem once, however many features
    if len(problems) == 1:
        raise UsageError(f"usage refused, nothing written: {problems[0]}")
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise UsageError(f"usage refused, nothing written ({len(problems)} problems):\n{body}")
