"""sql.py: parameters, references found by parsing, normalization."""

from __future__ import annotations

import pytest

from featurestore_dagster.definitions.sql import (
    SqlError,
    normalize_sql,
    sql_literal,
    substitute_parameters,
    table_references,
)


@pytest.mark.parametrize(
    "sql,tables,files",
    [
        ("SELECT * FROM features.a", {"features.a"}, set()),
        ("SELECT * FROM features.a JOIN raw.b USING (k)", {"features.a", "raw.b"}, set()),
        ("WITH x AS (SELECT * FROM features.a) SELECT * FROM x", {"features.a"}, set()),
        ("SELECT * FROM a", {"main.a"}, set()),
        (
            "SELECT * FROM (SELECT * FROM raw.b) t WHERE k IN (SELECT k FROM raw.c)",
            {"raw.b", "raw.c"},
            set(),
        ),
        ("SELECT * FROM 'data/x.parquet'", set(), {"data/x.parquet"}),
        ("SELECT * FROM read_parquet('data/*.parquet')", set(), {"data/*.parquet"}),
        ("SELECT * FROM read_csv('prices.csv')", set(), {"prices.csv"}),
        ("SELECT * FROM Features.A", {"features.a"}, set()),
        # A string that merely looks like a table is not a read.
        ("SELECT 'features.secret' AS note FROM raw.b", {"raw.b"}, set()),
        ("SELECT * FROM raw.b -- FROM features.commented\n", {"raw.b"}, set()),
    ],
)
def test_references_are_parsed_not_grepped(sql, tables, files):
    found = table_references(sql)
    assert set(found.tables) == tables
    assert set(found.files) == files


@pytest.mark.parametrize(
    "sql,message",
    [
        ("SELECT FROM WHERE (((", "does not parse"),
        ("DROP TABLE raw.b", "SELECT"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("INSERT INTO t VALUES (1)", "SELECT"),
    ],
)
def test_unusable_sql_is_refused(sql, message):
    with pytest.raises(SqlError, match=message):
        table_references(sql)


@pytest.mark.parametrize(
    "a,b",
    [
        ("SELECT a, b FROM t", "select a,\n   b\nfrom t"),
        ("SELECT a FROM t -- comment", "SELECT a FROM t"),
        ("SELECT /* c */ a FROM t", "SELECT a FROM t"),
        (
            "SELECT avg(x) OVER (PARTITION BY s ORDER BY d) FROM t",
            "select AVG(x) over (partition by s order by d) from t",
        ),
    ],
)
def test_normalization_ignores_formatting(a, b):
    assert normalize_sql(a) == normalize_sql(b)


def test_normalization_sees_real_changes():
    assert normalize_sql("SELECT a FROM t") != normalize_sql("SELECT b FROM t")


@pytest.mark.parametrize(
    "value,literal",
    [(14, "14"), (0.5, "0.5"), (True, "TRUE"), ("o'k", "'o''k'"), ([1, 2], "1, 2"), (None, "NULL")],
)
def test_parameters_become_literals(value, literal):
    assert sql_literal(value) == literal
    assert substitute_parameters("SELECT {{ p }}", {"p": value}) == f"SELECT {literal}"


def test_missing_parameter_is_named():
    with pytest.raises(SqlError, match="period"):
        substitute_parameters("SELECT {{ period }} + {{p}}", {"p": 1})


def test_injection_through_a_parameter_stays_a_string():
    sql = substitute_parameters("SELECT * FROM t WHERE s = {{ s }}", {"s": "x'; DROP TABLE t; --"})
    assert table_references(sql).tables == frozenset({"main.t"})
    assert "'x''; DROP TABLE t; --'" in sql
