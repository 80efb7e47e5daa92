"""Tests of featurestore_dagster.build.checks: check specs and auditing real DuckDB tables."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest

from featurestore_dagster.build.checks import (
    CheckOutcome,
    CheckSpecInfo,
    TableProfile,
    check_specs,
    evaluate_checks,
)
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import MaterializationError

STAGING = '"features"."__staging_stock_rsi_14d"'
DEFAULT_COLUMNS = "symbol VARCHAR, date DATE, stock_rsi_14d DOUBLE"
NOW = datetime(2024, 1, 10, tzinfo=UTC)
D1, D2 = date(2024, 1, 8), date(2024, 1, 9)


@pytest.fixture
def make_definition():
    """Factory: ``make_definition(data_type="integer", ...)`` -> a FeatureDefinition."""

    def make(**overrides: Any) -> FeatureDefinition:
        data: dict[str, Any] = {
            "feature_name": "stock_rsi_14d",
            "feature_type": "technical_indicator",
            "data_type": "float",
            "entity_columns": ["symbol"],
            "timestamp_column": "date",
            "transformation": {"code": "SELECT 1"},
        }
        data.update(overrides)
        return FeatureDefinition.model_validate(data)

    return make


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """One real DuckDB file for the module; each test gets an empty ``features`` schema."""
    connection = duckdb.connect(str(tmp_path_factory.mktemp("checks") / "store.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def conn(database):
    database.execute("CREATE SCHEMA features")
    yield database
    database.execute("DROP SCHEMA features CASCADE")


def load(conn, rows: list[tuple], columns: str = DEFAULT_COLUMNS) -> None:
    """(Re)create the staging table with ``columns`` and ``rows``."""
    conn.execute(f"CREATE OR REPLACE TABLE {STAGING} ({columns})")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        conn.executemany(f"INSERT INTO {STAGING} VALUES ({marks})", rows)


def audit(conn, definition, now=NOW) -> tuple[dict[str, CheckOutcome], TableProfile]:
    outcomes, profile = evaluate_checks(conn, definition, STAGING, now=now)
    assert [o.name for o in outcomes] == [s.name for s in check_specs(definition)]
    for outcome in outcomes:  # metadata is plain JSON without NaN
        json.dumps(outcome.metadata, allow_nan=False)
    return {o.name: o for o in outcomes}, profile


def rule(rule_type: str, blocking: bool = False, name: str | None = None, **parameters):
    data = {"rule_type": rule_type, "parameters": parameters, "is_blocking": blocking}
    if name:
        data["name"] = name
    return data


GOOD_ROWS = [("AAPL", D1, 40.0), ("AAPL", D2, 55.5), ("MSFT", D1, 60.0), ("MSFT", D2, 70.0)]


# --- check_specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules,expected",
    [
        ([], []),
        ([rule("range", min=0), rule("null_check")], ["range", "null_check"]),
        (
            [rule("range", min=0), rule("range", max=1), rule("range", min=0, max=1)],
            ["range", "range_2", "range_3"],
        ),
        ([rule("range", min=0, name="rsi_bounds"), rule("range", min=0)], ["rsi_bounds", "range"]),
        (
            [rule("row_count", name="volume"), rule("row_count", name="volume")],
            ["volume", "volume_2"],
        ),
        ([rule("null_check", name="schema"), rule("unique")], ["schema_2", "unique"]),
        (
            [rule("range", min=0), rule("range", min=0, name="range_2"), rule("range", min=0)],
            ["range", "range_2", "range_3"],
        ),
    ],
)
def test_check_names(make_definition, rules, expected):
    names = [s.name for s in check_specs(make_definition(validation_rules=rules))]
    assert names == ["schema", "unique_key", *expected]


@pytest.mark.parametrize(
    "spec_rule,description",
    [
        (rule("range", min=0, max=100), "stock_rsi_14d within [0, 100]"),
        (rule("range", min=0.5), "stock_rsi_14d >= 0.5"),
        (rule("range", max=100), "stock_rsi_14d <= 100"),
        (rule("null_check", max_null_fraction=0.01), "stock_rsi_14d null fraction <= 0.01"),
        (rule("outlier"), "stock_rsi_14d zscore outliers (|z| > 4) <= 0.001 of values"),
        (rule("outlier", method="iqr"), "stock_rsi_14d iqr outliers (IQR distance > 3)"),
        (rule("unique"), "one row per (symbol, date)"),
        (rule("unique", columns=["symbol"]), "one row per (symbol)"),
        (rule("allowed_values", values=[1, 2]), "stock_rsi_14d in [1, 2]"),
        (rule("row_count", min=5, max=9), "row count within [5, 9]"),
        (rule("row_count"), "row count >= 1"),
        (rule("freshness", max_age="3d"), "newest date at most 3d old"),
        (rule("custom_sql", sql="SELECT * FROM {{ table }}"), "at most 0 failing rows"),
    ],
)
def test_rule_descriptions(make_definition, spec_rule, description):
    spec = check_specs(make_definition(validation_rules=[spec_rule]))[2]
    assert description in spec.description
    assert spec.rule_type == spec_rule["rule_type"]
    assert spec.rule is not None and spec.blocking is False


def test_implicit_specs_are_blocking(make_definition):
    rules = [rule("range", blocking=True, min=0), rule("null_check")]
    specs = check_specs(make_definition(validation_rules=rules))
    assert specs[:2] == [
        CheckSpecInfo(
            "schema",
            "schema",
            True,
            "columns exactly symbol, date, stock_rsi_14d; stock_rsi_14d is float",
            None,
        ),
        CheckSpecInfo(
            "unique_key", "unique_key", True, "one row per (symbol, date), no NULL keys", None
        ),
    ]
    assert [s.blocking for s in specs[2:]] == [True, False]


# --- implicit schema check ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data_type,columns,passed,problem",
    [
        ("float", DEFAULT_COLUMNS, True, None),
        ("float", "stock_rsi_14d FLOAT, date DATE, symbol VARCHAR", True, None),
        ("float", "symbol VARCHAR, date DATE, stock_rsi_14d DECIMAL(18, 3)", True, None),
        ("integer", "symbol VARCHAR, date DATE, stock_rsi_14d HUGEINT", True, None),
        ("integer", "symbol VARCHAR, date DATE, stock_rsi_14d UBIGINT", True, None),
        ("integer", "symbol VARCHAR, date DATE, stock_rsi_14d TINYINT", True, None),
        ("string", "symbol VARCHAR, date DATE, stock_rsi_14d VARCHAR", True, None),
        ("boolean", "symbol VARCHAR, date DATE, stock_rsi_14d BOOLEAN", True, None),
        ("timestamp", "symbol VARCHAR, date DATE, stock_rsi_14d TIMESTAMP_NS", True, None),
        ("timestamp", "symbol VARCHAR, date DATE, stock_rsi_14d TIMESTAMPTZ", True, None),
        ("timestamp", "symbol VARCHAR, date DATE, stock_rsi_14d DATE", True, None),
        ("float", "symbol VARCHAR, date DATE, stock_rsi_14d VARCHAR", False, "is VARCHAR"),
        ("float", "symbol VARCHAR, date DATE, stock_rsi_14d BIGINT", False, "is BIGINT"),
        ("integer", DEFAULT_COLUMNS, False, "needs an integer type"),
        ("string", "symbol VARCHAR, date DATE, stock_rsi_14d INTEGER", False, "needs VARCHAR"),
        ("boolean", "symbol VARCHAR, date DATE, stock_rsi_14d INTEGER", False, "needs BOOLEAN"),
        ("timestamp", "symbol VARCHAR, date DATE, stock_rsi_14d TIME", False, "is TIME"),
        ("float", DEFAULT_COLUMNS + ", extra INTEGER", False, "unexpected column(s): extra"),
        ("float", "date DATE, stock_rsi_14d DOUBLE", False, "missing column(s): symbol"),
        ("float", "symbol VARCHAR, date DATE", False, "missing column(s): stock_rsi_14d"),
    ],
)
def test_schema_check(conn, make_definition, data_type, columns, passed, problem):
    load(conn, [], columns)
    outcomes, _ = audit(conn, make_definition(data_type=data_type))
    schema = outcomes["schema"]
    assert (schema.passed, schema.blocking) == (passed, True)
    assert schema.metadata["expected_columns"] == ["symbol", "date", "stock_rsi_14d"]
    described = conn.execute(f"DESCRIBE {STAGING}").fetchall()
    assert schema.metadata["actual_columns"] == {row[0]: row[1] for row in described}
    if problem is None:
        assert schema.metadata["problem"] is None
    else:
        assert problem in schema.metadata["problem"]


def test_schema_metadata_lists_expected_and_actual(conn, make_definition):
    load(conn, [], "symbol VARCHAR, stock_rsi_14d VARCHAR, extra INT")
    schema = audit(conn, make_definition())[0]["schema"]
    assert schema.metadata["missing_columns"] == ["date"]
    assert schema.metadata["unexpected_columns"] == ["extra"]
    assert schema.metadata["actual_value_type"] == "VARCHAR"
    assert schema.metadata["expected_value_type"].startswith("float:")
    assert schema.metadata["actual_columns"] == {
        "symbol": "VARCHAR",
        "stock_rsi_14d": "VARCHAR",
        "extra": "INTEGER",
    }


# --- implicit unique_key check ------------------------------------------------------------


@pytest.mark.parametrize(
    "rows,passed,duplicate_rows,null_key_rows",
    [
        (GOOD_ROWS, True, 0, {"symbol": 0, "date": 0}),
        ([], True, 0, {"symbol": 0, "date": 0}),
        (GOOD_ROWS + [("AAPL", D1, 1.0)], False, 1, {"symbol": 0, "date": 0}),
        (GOOD_ROWS + [("AAPL", D1, 1.0), ("AAPL", D1, 2.0)], False, 2, {"symbol": 0, "date": 0}),
        (GOOD_ROWS + [(None, D1, 1.0)], False, 0, {"symbol": 1, "date": 0}),
        (GOOD_ROWS + [("IBM", None, 1.0)], False, 0, {"symbol": 0, "date": 1}),
    ],
)
def test_unique_key(conn, make_definition, rows, passed, duplicate_rows, null_key_rows):
    load(conn, rows)
    check = audit(conn, make_definition())[0]["unique_key"]
    assert (check.passed, check.blocking) == (passed, True)
    assert check.metadata["duplicate_rows"] == duplicate_rows
    assert check.metadata["null_key_rows"] == null_key_rows
    assert check.metadata["row_count"] == len(rows)
    if any(null_key_rows.values()):
        assert "NULL in key column" in check.metadata["problem"]


def test_unique_key_samples_duplicate_keys(conn, make_definition):
    load(conn, GOOD_ROWS + [("AAPL", D1, 1.0), ("AAPL", D1, 2.0), ("MSFT", D2, 3.0)])
    check = audit(conn, make_definition())[0]["unique_key"]
    assert check.metadata["duplicate_key_count"] == 2
    assert check.metadata["duplicate_rows"] == 3
    assert check.metadata["duplicate_keys"] == [
        {"symbol": "AAPL", "date": "2024-01-08", "rows": 3},
        {"symbol": "MSFT", "date": "2024-01-09", "rows": 2},
    ]
    assert check.metadata["problem"] == "2 key(s) appear more than once"


def test_global_series_keyed_by_date_alone(conn, make_definition):
    load(conn, [(D1, 1.0), (D2, 2.0), (D2, 3.0)], "date DATE, stock_rsi_14d DOUBLE")
    outcomes, _ = audit(conn, make_definition(entity_columns=[]))
    assert outcomes["schema"].passed
    assert not outcomes["unique_key"].passed
    assert outcomes["unique_key"].metadata["duplicate_keys"] == [{"date": "2024-01-09", "rows": 2}]


# --- validation rules ---------------------------------------------------------------------

NUMBERS = [("A", D1, 1.0), ("B", D1, 2.0), ("C", D1, 3.0), ("D", D1, None)]
SPREAD = [(f"S{i}", D1, float(v)) for i, v in enumerate([10, 11, 9, 10, 12, 8, 10, 11, 9, 10])]
STRINGS = "symbol VARCHAR, date DATE, stock_rsi_14d VARCHAR"
INTEGERS = "symbol VARCHAR, date DATE, stock_rsi_14d INTEGER"
TIMESTAMPS = "symbol VARCHAR, date TIMESTAMP, stock_rsi_14d DOUBLE"
ZONED = "symbol VARCHAR, date TIMESTAMPTZ, stock_rsi_14d DOUBLE"
STAMP = datetime(2024, 1, 9, 12, 0)

RULE_CASES = [
    # range: any non-null value outside [min, max]; NULL is not a violation
    ("range-pass", {}, NUMBERS, rule("range", min=1, max=3), True, {"failing_rows": 0}),
    (
        "range-fail-max",
        {},
        NUMBERS,
        rule("range", True, min=0, max=2.5),
        False,
        {"failing_rows": 1, "observed_min": 1.0, "observed_max": 3.0, "max_allowed": 2.5},
    ),
    ("range-fail-min-only", {}, NUMBERS, rule("range", min=1.5), False, {"failing_rows": 1}),
    (
        "range-int-column",
        {},
        (INTEGERS, [("A", D1, 1), ("B", D1, 2)]),
        rule("range", max=1.5),
        False,
        {"failing_rows": 1},
    ),
    ("range-empty", {}, [], rule("range", min=0), True, {"failing_rows": 0, "observed_min": None}),
    # null_check: null fraction above max_null_fraction
    (
        "null-pass",
        {},
        NUMBERS,
        rule("null_check", max_null_fraction=0.25),
        True,
        {"null_rows": 1, "null_fraction": 0.25},
    ),
    ("null-fail", {}, NUMBERS, rule("null_check"), False, {"null_rows": 1, "row_count": 4}),
    (
        "null-string-column",
        {"data_type": "string"},
        (STRINGS, [("A", D1, None)]),
        rule("null_check", max_null_fraction=0.5),
        False,
        {"null_fraction": 1.0},
    ),
    ("null-empty", {}, [], rule("null_check"), True, {"null_fraction": None}),
    # outlier: fraction of non-null values that are outliers above max_outlier_fraction
    ("zscore-pass", {}, SPREAD, rule("outlier"), True, {"outlier_rows": 0, "mean": 10.0}),
    (
        "zscore-fail",
        {},
        SPREAD + [("X", D1, 30.0)],
        rule("outlier", threshold=2.0, max_outlier_fraction=0.05),
        False,
        {"outlier_rows": 1, "non_null_rows": 11, "outlier_fraction": 1 / 11},
    ),
    (
        "zscore-fraction-tolerated",
        {},
        SPREAD + [("X", D1, 30.0)],
        rule("outlier", threshold=2.0, max_outlier_fraction=0.1),
        True,
        {"outlier_rows": 1},
    ),
    (
        "zscore-constant",
        {},
        [("A", D1, 5.0), ("B", D1, 5.0)],
        rule("outlier"),
        True,
        {"outlier_rows": 0, "stddev": 0.0},
    ),
    (
        "iqr-pass",
        {},
        SPREAD,
        rule("outlier", method="iqr"),
        True,
        {"outlier_rows": 0, "q1": 9.25, "q3": 10.75, "threshold": 3.0},
    ),
    (
        "iqr-fail",
        {},
        SPREAD + [("X", D1, 100.0)],
        rule("outlier", True, method="iqr"),
        False,
        {"outlier_rows": 1, "q1": 9.5, "q3": 11.0, "upper_bound": 15.5},
    ),
    (
        "iqr-low-side",
        {},
        SPREAD + [("X", D1, -100.0)],
        rule("outlier", method="iqr"),
        False,
        {"outlier_rows": 1, "observed_min": -100.0},
    ),
    (
        "zscore-int-column",
        {"data_type": "integer"},
        (INTEGERS, [(s, d, int(v)) for s, d, v in SPREAD] + [("X", D1, 30)]),
        rule("outlier", threshold=2.0, max_outlier_fraction=0.05),
        False,
        {"outlier_rows": 1, "observed_max": 30.0},
    ),
    # unique: duplicate keys over columns (default entity + timestamp)
    ("unique-pass", {}, GOOD_ROWS, rule("unique"), True, {"duplicate_rows": 0}),
    (
        "unique-fail-columns",
        {},
        GOOD_ROWS,
        rule("unique", True, columns=["symbol"]),
        False,
        {"duplicate_rows": 2, "duplicate_key_count": 2, "columns": ["symbol"]},
    ),
    (
        "unique-null-keys-equal",
        {},
        [(None, D1, 1.0), (None, D1, 2.0)],
        rule("unique"),
        False,
        {"duplicate_keys": [{"symbol": None, "date": "2024-01-08", "rows": 2}]},
    ),
    # allowed_values: any non-null value not listed
    (
        "allowed-pass",
        {"data_type": "string"},
        (STRINGS, [("A", D1, "buy"), ("B", D1, "sell"), ("C", D1, None)]),
        rule("allowed_values", values=["buy", "sell"]),
        True,
        {"failing_rows": 0},
    ),
    (
        "allowed-fail",
        {"data_type": "string"},
        (STRINGS, [("A", D1, "buy"), ("B", D1, "hold"), ("C", D1, "hold"), ("D", D1, "x")]),
        rule("allowed_values", values=["buy", "sell"]),
        False,
        {
            "failing_rows": 3,
            "unexpected_values": [{"value": "hold", "rows": 2}, {"value": "x", "rows": 1}],
        },
    ),
    (
        "allowed-quote-safe",
        {"data_type": "string"},
        (STRINGS, [("A", D1, "it's"), ("B", D1, "'); DROP TABLE x; --")]),
        rule("allowed_values", values=["it's", "'); DROP TABLE x; --"]),
        True,
        {"failing_rows": 0},
    ),
    (
        "allowed-int-no-rounding",
        {"data_type": "integer"},
        (INTEGERS, [("A", D1, 1), ("B", D1, 3)]),
        rule("allowed_values", values=[1, 2.5, "x"]),
        False,
        {"failing_rows": 1},
    ),
    (
        "allowed-int-from-strings",
        {"data_type": "integer"},
        (INTEGERS, [("A", D1, 1), ("B", D1, 3)]),
        rule("allowed_values", values=["1", 3.0]),
        True,
        {"failing_rows": 0},
    ),
    (
        "allowed-float",
        {},
        NUMBERS,
        rule("allowed_values", values=[1, 2.0, 3]),
        True,
        {"failing_rows": 0},
    ),
    (
        "allowed-unconvertible-only",
        {},
        NUMBERS,
        rule("allowed_values", values=["high"]),
        False,
        {"failing_rows": 3},
    ),
    (
        "allowed-boolean",
        {"data_type": "boolean"},
        ("symbol VARCHAR, date DATE, stock_rsi_14d BOOLEAN", [("A", D1, True), ("B", D1, False)]),
        rule("allowed_values", values=[True]),
        False,
        {"failing_rows": 1},
    ),
    # row_count: outside [min, max]
    ("rows-pass", {}, GOOD_ROWS, rule("row_count", min=4, max=4), True, {"row_count": 4}),
    ("rows-fail-min", {}, [], rule("row_count"), False, {"row_count": 0, "min_rows": 1}),
    ("rows-fail-max", {}, GOOD_ROWS, rule("row_count", max=3), False, {"max_rows": 3}),
    # freshness: newest timestamp older than max_age at `now` (a DATE counts as its midnight)
    (
        "fresh-date-pass",
        {},
        GOOD_ROWS,
        rule("freshness", max_age="1d"),
        True,
        {"newest_timestamp": "2024-01-09", "age_seconds": 86400.0, "age": "1d"},
    ),
    (
        "fresh-date-fail",
        {},
        GOOD_ROWS,
        rule("freshness", True, max_age="23h"),
        False,
        {"age_seconds": 86400.0, "max_age_seconds": 82800.0},
    ),
    (
        "fresh-timestamp-pass",
        {},
        (TIMESTAMPS, [("A", STAMP, 1.0)]),
        rule("freshness", max_age="12h"),
        True,
        {"age": "12h"},
    ),
    (
        "fresh-timestamp-fail",
        {},
        (TIMESTAMPS, [("A", STAMP, 1.0)]),
        rule("freshness", max_age="11h"),
        False,
        {"newest_timestamp": "2024-01-09 12:00:00"},
    ),
    (
        "fresh-tz-fail",
        {},
        (ZONED, [("A", datetime(2024, 1, 9, 12, tzinfo=UTC), 1.0)]),
        rule("freshness", max_age="11h"),
        False,
        {"age_seconds": 43200.0},
    ),
    (
        "fresh-empty",
        {},
        [],
        rule("freshness", max_age="3d"),
        False,
        {"newest_timestamp": None, "problem": "no timestamps: the table is empty"},
    ),
    (
        "fresh-not-temporal",
        {},
        ("symbol VARCHAR, date VARCHAR, stock_rsi_14d DOUBLE", [("A", "2024-01-09", 1.0)]),
        rule("freshness", max_age="3d"),
        False,
        {"skipped": True, "timestamp_type": "VARCHAR"},
    ),
    # custom_sql: rows returned by the query over {{ table }} above max_failing_rows
    (
        "sql-pass",
        {},
        NUMBERS,
        rule("custom_sql", sql="SELECT * FROM {{ table }} WHERE stock_rsi_14d > 10"),
        True,
        {"failing_rows": 0},
    ),
    (
        "sql-fail",
        {},
        NUMBERS,
        rule("custom_sql", sql="SELECT symbol FROM {{table}} WHERE stock_rsi_14d >= 2;"),
        False,
        {"failing_rows": 2, "failing_sample": [{"symbol": "B"}, {"symbol": "C"}]},
    ),
    (
        "sql-tolerated",
        {},
        NUMBERS,
        rule(
            "custom_sql",
            sql="SELECT * FROM {{ table }} WHERE stock_rsi_14d >= 2",
            max_failing_rows=2,
        ),
        True,
        {"failing_rows": 2},
    ),
    (
        "sql-table-rendered",
        {},
        NUMBERS,
        rule("custom_sql", sql="SELECT * FROM {{ table }}", max_failing_rows=9),
        True,
        {"sql": f"SELECT * FROM {STAGING}"},
    ),
    (
        "sql-broken",
        {},
        NUMBERS,
        rule("custom_sql", sql="SELECT nope FROM {{ table }}"),
        False,
        {"failing_rows": None, "sql": f"SELECT nope FROM {STAGING}"},
    ),
]


@pytest.mark.parametrize(
    "overrides,table,spec_rule,passed,metadata",
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_rule(conn, make_definition, overrides, table, spec_rule, passed, metadata):
    columns, rows = table if isinstance(table, tuple) else (DEFAULT_COLUMNS, table)
    load(conn, rows, columns)
    definition = make_definition(validation_rules=[spec_rule], **overrides)
    outcome = audit(conn, definition)[0][spec_rule["rule_type"]]
    assert (outcome.passed, outcome.blocking) == (passed, spec_rule["is_blocking"])
    assert outcome.description == check_specs(definition)[2].description
    assert {k: outcome.metadata.get(k) for k in metadata} == metadata


def test_repeated_rules_are_evaluated_separately(conn, make_definition):
    load(conn, NUMBERS)
    rules = [rule("range", min=0), rule("range", max=2), rule("range", min=0, name="sane")]
    outcomes, _ = audit(conn, make_definition(validation_rules=rules))
    assert {n: o.passed for n, o in outcomes.items() if n not in ("schema", "unique_key")} == {
        "range": True,
        "range_2": False,
        "sane": True,
    }


def test_freshness_defaults_to_now(conn, make_definition):
    load(conn, [("A", datetime.now(UTC).date(), 1.0)])
    definition = make_definition(validation_rules=[rule("freshness", max_age="2d")])
    outcome = evaluate_checks(conn, definition, STAGING)[0][2]
    assert outcome.passed and outcome.metadata["age_seconds"] < 2 * 86400


def test_naive_now_is_utc(conn, make_definition):
    load(conn, [("A", STAMP, 1.0)], TIMESTAMPS)
    definition = make_definition(validation_rules=[rule("freshness", max_age="1h")])
    outcomes, _ = audit(conn, definition, now=datetime(2024, 1, 9, 12, 30))
    assert outcomes["freshness"].metadata["age_seconds"] == 1800.0


# --- broken tables ------------------------------------------------------------------------

ALL_RULES = [
    rule("range", min=0),
    rule("null_check"),
    rule("outlier"),
    rule("outlier", method="iqr"),
    rule("unique"),
    rule("allowed_values", values=[1]),
    rule("row_count"),
    rule("freshness", max_age="3d"),
    rule("custom_sql", sql="SELECT * FROM {{ table }} WHERE stock_rsi_14d < 0"),
]


@pytest.mark.parametrize(
    "columns,skipped",
    [
        (
            "symbol VARCHAR, date DATE",
            ["range", "null_check", "outlier", "outlier_2", "allowed_values"],
        ),
        ("symbol VARCHAR, stock_rsi_14d DOUBLE", ["unique_key", "unique", "freshness"]),
        ("date DATE, stock_rsi_14d DOUBLE", ["unique_key", "unique"]),
        ("symbol VARCHAR, date DATE, stock_rsi_14d VARCHAR", ["range", "outlier", "outlier_2"]),
        (
            "symbol VARCHAR, date DATE, stock_rsi_14d INTEGER[]",
            ["range", "outlier", "outlier_2", "allowed_values"],
        ),
    ],
)
def test_missing_columns_fail_without_crashing(conn, make_definition, columns, skipped):
    load(conn, [], columns)
    outcomes, profile = audit(conn, make_definition(validation_rules=ALL_RULES))
    assert not outcomes["schema"].passed
    assert [n for n, o in outcomes.items() if o.metadata.get("skipped")] == skipped
    for name in skipped:
        assert not outcomes[name].passed
        assert "reason" in outcomes[name].metadata
    assert profile.row_count == 0


def test_missing_value_column_reason(conn, make_definition):
    load(conn, [("A", D1)], "symbol VARCHAR, date DATE")
    outcomes, profile = audit(conn, make_definition(validation_rules=[rule("range", min=0)]))
    assert outcomes["range"].metadata == {
        "skipped": True,
        "reason": "column(s) stock_rsi_14d missing from the table, so this check cannot run",
        "missing_columns": ["stock_rsi_14d"],
    }
    assert profile == TableProfile(1, None, None, None, None)


def test_custom_sql_over_missing_column_reports_error(conn, make_definition):
    load(conn, [("A", D1)], "symbol VARCHAR, date DATE")
    rules = [rule("custom_sql", sql="SELECT * FROM {{ table }} WHERE stock_rsi_14d < 0")]
    outcome = audit(conn, make_definition(validation_rules=rules))[0]["custom_sql"]
    assert not outcome.passed
    assert "Binder Error" in outcome.metadata["error"]
    assert "stock_rsi_14d" in outcome.metadata["error"]
    assert "\n" not in outcome.metadata["error"]


def test_missing_table_raises(conn, make_definition):
    with pytest.raises(MaterializationError, match="cannot audit table"):
        evaluate_checks(conn, make_definition(), "features.nope", now=NOW)


@pytest.mark.parametrize(
    "table", [STAGING, "features.__staging_stock_rsi_14d", '"features"."__staging_stock_rsi_14d"']
)
def test_table_name_forms(conn, make_definition, table):
    load(conn, GOOD_ROWS)
    outcomes, profile = evaluate_checks(conn, make_definition(), table, now=NOW)
    assert all(o.passed for o in outcomes) and profile.row_count == 4


def test_quoted_odd_column_names(conn, make_definition):
    conn.execute(
        'CREATE TABLE features."my table" ("Symbol" VARCHAR, date DATE, stock_rsi_14d INT)'
    )
    conn.execute("INSERT INTO features.\"my table\" VALUES ('A', DATE '2024-01-09', 1)")
    definition = make_definition(
        data_type="integer", validation_rules=[rule("unique"), rule("range", min=0)]
    )
    outcomes, _ = evaluate_checks(conn, definition, 'features."my table"', now=NOW)
    assert [o.passed for o in outcomes] == [True, True, True, True]


# --- profile ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "columns,rows,profile",
    [
        (DEFAULT_COLUMNS, NUMBERS, TableProfile(4, 0.25, 1.0, 3.0, 2.0)),
        (DEFAULT_COLUMNS, [], TableProfile(0, None, None, None, None)),
        (DEFAULT_COLUMNS, [("A", D1, None)], TableProfile(1, 1.0, None, None, None)),
        (INTEGERS, [("A", D1, 2), ("B", D1, 4)], TableProfile(2, 0.0, 2.0, 4.0, 3.0)),
        (
            "symbol VARCHAR, date DATE, stock_rsi_14d DECIMAL(10, 2)",
            [("A", D1, 1.25), ("B", D1, 2.75)],
            TableProfile(2, 0.0, 1.25, 2.75, 2.0),
        ),
        (STRINGS, [("A", D1, "x"), ("B", D1, None)], TableProfile(2, 0.5, None, None, None)),
    ],
)
def test_profile(conn, make_definition, columns, rows, profile):
    load(conn, rows, columns)
    assert audit(conn, make_definition())[1] == profile


def test_nan_counts_as_missing(conn, make_definition):
    load(conn, [])
    conn.execute(
        f"INSERT INTO {STAGING} VALUES ('A', DATE '2024-01-08', 'nan'::DOUBLE),"
        " ('B', DATE '2024-01-08', 1.0), ('C', DATE '2024-01-08', 3.0),"
        " ('D', DATE '2024-01-08', NULL)"
    )
    rules = [
        rule("null_check", max_null_fraction=0.5),
        rule("range", min=0, max=5),
        rule("outlier"),
        rule("outlier", method="iqr"),
    ]
    outcomes, profile = audit(conn, make_definition(validation_rules=rules))
    assert profile == TableProfile(4, 0.5, 1.0, 3.0, 2.0)
    assert outcomes["null_check"].metadata["null_rows"] == 2
    assert outcomes["null_check"].metadata["nan_rows"] == 1
    assert outcomes["range"].passed and outcomes["range"].metadata["observed_max"] == 3.0
    assert outcomes["outlier"].metadata["non_null_rows"] == 2
    assert outcomes["outlier_2"].metadata["q1"] == 1.5
    assert all(o.passed for o in outcomes.values())


def test_nan_rescan_keeps_duplicate_detection(conn, make_definition):
    load(conn, [("A", D1, float("nan")), ("A", D1, 1.0), ("B", D1, None)])
    outcomes, profile = audit(conn, make_definition(validation_rules=[rule("unique")]))
    assert profile == TableProfile(3, 2 / 3, 1.0, 1.0, 1.0)
    for name in ("unique_key", "unique"):
        assert outcomes[name].metadata["duplicate_keys"] == [
            {"symbol": "A", "date": "2024-01-08", "rows": 2}
        ]


def test_unexpected_values_are_counted_in_a_bounded_sample(conn, make_definition):
    conn.execute(
        f"CREATE TABLE {STAGING} AS SELECT 'S' || i::VARCHAR AS symbol, DATE '2024-01-08' AS date,"
        " CASE WHEN i % 2 = 0 THEN 'hold' ELSE 'sell' END AS stock_rsi_14d FROM range(100002) t(i)"
    )
    definition = make_definition(
        data_type="string", validation_rules=[rule("allowed_values", values=["buy"])]
    )
    outcome = audit(conn, definition)[0]["allowed_values"]
    assert outcome.metadata["failing_rows"] == 100_002
    sample = outcome.metadata["unexpected_values"]  # which 100,000 rows is up to the scan
    assert {v["value"] for v in sample} == {"hold", "sell"}
    assert sum(v["rows"] for v in sample) == 100_000
    assert outcome.metadata["unexpected_values_counted_in"] == "first 100000 failing rows"


def test_infinite_values_do_not_break_metadata(conn, make_definition):
    load(conn, [])
    conn.execute(
        f"INSERT INTO {STAGING} VALUES ('A', DATE '2024-01-08', 'inf'::DOUBLE),"
        + ", ".join(f"('S{i}', DATE '2024-01-08', {i}.0)" for i in range(8))
    )
    rules = [rule("range", max=100), rule("outlier"), rule("outlier", method="iqr")]
    outcomes, profile = audit(conn, make_definition(validation_rules=rules))
    assert profile.max is None and profile.mean is None and profile.min == 0.0
    assert not outcomes["range"].passed and outcomes["range"].metadata["observed_max"] is None
    assert outcomes["outlier_2"].metadata["outlier_rows"] == 1


def test_everything_passes_on_good_data(conn, make_definition):
    load(conn, GOOD_ROWS)
    rules = [
        rule("range", True, min=0, max=100),
        rule("null_check"),
        rule("outlier"),
        rule("outlier", method="iqr"),
        rule("unique"),
        rule("row_count", min=4),
        rule("freshness", max_age="3d"),
        rule("custom_sql", sql="SELECT * FROM {{ table }} WHERE stock_rsi_14d > 100"),
    ]
    outcomes, profile = audit(conn, make_definition(validation_rules=rules))
    assert all(o.passed for o in outcomes.values()), {
        n: o.metadata for n, o in outcomes.items() if not o.passed
    }
    assert profile == TableProfile(4, 0.0, 40.0, 70.0, 56.375)
    assert [o.blocking for o in outcomes.values()] == [True, True, True] + [False] * 7
