"""sql.py: parameters, references found by parsing, normalization."""

from __future__ import annotations

import pytest

from featurestore_dagster.definitions.sql import (
    SqlError,
    check_one_select,
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


# --- the reference check walks the whole tree (issue 9) ---------------------------------------


@pytest.mark.parametrize(
    "sql,tables,files",
    [
        ("SELECT * FROM read_text('/etc/passwd')", set(), {"/etc/passwd"}),
        ("SELECT * FROM read_blob('/etc/shadow')", set(), {"/etc/shadow"}),
        ("SELECT * FROM glob('/*')", set(), {"/*"}),
        ("SELECT * FROM query_table('raw.fundamentals')", {"raw.fundamentals"}, set()),
        ("SELECT * FROM query_table('featurestore.raw.x')", {"raw.x"}, set()),
        ("SELECT * FROM read_csv(['a.csv', '/etc/passwd'])", set(), {"a.csv", "/etc/passwd"}),
        (
            "SELECT * FROM read_parquet(['a.parquet', 'b.parquet'])",
            set(),
            {"a.parquet", "b.parquet"},
        ),
        (
            "SELECT * FROM read_csv('a.csv', header = true, columns = {'a': 'INT'})",
            set(),
            {"a.csv"},
        ),
        ("SELECT * FROM read_json_auto('x.json')", set(), {"x.json"}),
        ("SELECT * FROM read_duckdb('other.duckdb', table_name = 't')", set(), {"other.duckdb"}),
        ("SELECT * FROM sniff_csv('/etc/passwd')", set(), {"/etc/passwd"}),
        ("SELECT * FROM parquet_metadata('/etc/passwd')", set(), {"/etc/passwd"}),
        ('SELECT * FROM "/etc/passwd"', set(), {"/etc/passwd"}),
        ("SELECT * FROM 'https://example.com/x.csv'", set(), {"https://example.com/x.csv"}),
        # Deep inside the tree: a scalar subquery in a CASE in a window in a CTE.
        (
            "WITH a AS (SELECT CASE WHEN (SELECT count(*) FROM read_text('/etc/hosts')) > 0"
            " THEN 1 END AS v FROM raw.b) SELECT * FROM a",
            {"raw.b"},
            {"/etc/hosts"},
        ),
        ("SELECT * FROM raw.b WHERE k IN (SELECT * FROM glob('/root/*'))", {"raw.b"}, {"/root/*"}),
        # Another attached catalog is never the lake's table of the same name.
        ("SELECT * FROM other.raw.b", {"other.raw.b"}, set()),
        ("SELECT * FROM featurestore.raw.b", {"raw.b"}, set()),
        ("SELECT * FROM information_schema.tables", {"information_schema.tables"}, set()),
        # Safe generators and value functions are not references.
        ("SELECT * FROM range(3) JOIN generate_series(1, 2) ON true", set(), set()),
        ("SELECT histogram(x), list_transform([1], y -> y + 1) FROM raw.b", {"raw.b"}, set()),
        ("SELECT ntile(4) OVER (ORDER BY x), lag(x) OVER () FROM raw.b", {"raw.b"}, set()),
    ],
)
def test_every_table_function_and_file_reader_is_a_reference(sql, tables, files):
    found = table_references(sql)
    assert set(found.tables) == tables
    assert set(found.files) == files


@pytest.mark.parametrize(
    "sql,message",
    [
        ("SELECT current_setting('temp_directory') AS v", "current_setting"),
        ("SELECT getvariable('x') AS v", "getvariable"),
        ("SELECT json_execute_serialized_sql('x') AS v", "json_execute_serialized_sql"),
        ("SELECT nextval('s') AS v", "nextval"),
        ("SELECT pg_sleep(100) AS v", "pg_sleep"),
        ("SELECT main.read_texts('x') AS v", "read_texts"),
        ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
        ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
        ("SELECT * FROM sqlite_scan('x.db', 't')", "sqlite_scan"),
        ("SELECT * FROM postgres_scan('host=x', 'public', 't')", "postgres_scan"),
        ("SELECT * FROM query('SELECT * FROM raw.secret')", "query"),
        ("SELECT * FROM histogram('raw.secret', x)", "histogram"),
        ("SELECT * FROM ducklake_snapshots('featurestore')", "ducklake_snapshots"),
        ("SELECT * FROM read_csv('a' || '.csv')", "string literal"),
        ("SELECT * FROM read_csv(getenv('P'))", "string literal"),
        ("SELECT * FROM query_table(k) JOIN raw.b USING (k)", "string literal"),
        ("SELECT * FROM (DESCRIBE raw.b)", "DESCRIBE"),
        ("SELECT * FROM (SUMMARIZE raw.b)", "SUMMARIZE"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("ATTACH 'x.duckdb' AS x", "ATTACH"),
        ("INSTALL httpfs", "not allowed|SELECT"),
        ("LOAD httpfs", "LOAD|SELECT"),
        ("COPY raw.b TO '/tmp/x.csv'", "COPY"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
        ("CALL pragma_version()", "CALL"),
        ("SELECT 1 AS v; SET threads = 1", "exactly one"),
        ("SELECT 1 AS v; ATTACH 'x.duckdb' AS x", "exactly one"),
        ("SELECT 1 AS v; COPY (SELECT 1) TO '/tmp/x.csv'", "exactly one"),
        ("EXPLAIN SELECT 1", "EXPLAIN|SELECT"),
    ],
)
def test_what_is_not_a_value_function_is_refused_with_its_name(sql, message):
    with pytest.raises(SqlError, match=message):
        table_references(sql)


def duckdb_function_names(*types: str) -> set[str]:
    import duckdb

    placeholders = ", ".join("?" for _ in types)
    with duckdb.connect() as conn:
        rows = conn.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions()"
            f" WHERE function_type IN ({placeholders})",
            list(types),
        ).fetchall()
    return {row[0] for row in rows}


def test_no_duckdb_table_function_passes_unnoticed():
    """Every table function of the installed DuckDB, called in FROM or in a select list, is
    either refused or reported as a read; only the row generators read nothing."""
    generators = {"range", "generate_series", "unnest", "repeat"}
    values = duckdb_function_names("scalar", "aggregate", "macro")  # histogram(x): aggregate
    unnoticed = []
    for name in sorted(duckdb_function_names("table", "table_macro", "pragma")):
        calls = [f"SELECT * FROM {name}('x.csv')", f"SELECT * FROM main.{name}('x.csv')"]
        calls += [f"SELECT * FROM {name}()"]
        if name not in values:
            calls.append(f"SELECT {name}('x.csv') AS v")
        for sql in calls:
            try:
                found = table_references(sql)
            except SqlError:
                continue
            if not found.tables and not found.files and name not in generators:
                unnoticed.append(sql)
    assert unnoticed == []


def test_allowed_functions_are_value_functions_of_this_duckdb():
    from featurestore_dagster.definitions.functions import ALLOWED_FUNCTIONS

    values = duckdb_function_names("scalar", "aggregate", "macro")
    windows = {"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile"}
    windows |= {"lag", "lead", "first_value", "last_value", "nth_value", "fill", "unnest"}
    assert ALLOWED_FUNCTIONS - values - windows == set()
    tables = duckdb_function_names("table", "table_macro", "pragma")
    generators = {"range", "generate_series", "unnest", "repeat", "histogram"}
    assert (ALLOWED_FUNCTIONS & tables) - generators == set()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT x FROM (" * 1000 + "SELECT 1 AS x" + ")" * 1000,
        "SELECT x FROM (" * 400 + "SELECT 1 AS x" + ")" * 400,
        "SELECT " + "(" * 1000 + "1" + ")" * 1000 + " AS x",
        "SELECT " + " + ".join(["1"] * 5000) + " AS x",
    ],
    ids=["1000-nested-subqueries", "400-nested-subqueries", "1000-parentheses", "5000-terms"],
)
def test_deep_sql_is_one_message_not_a_traceback(sql):
    with pytest.raises(SqlError, match="nested"):
        table_references(sql)


def test_sql_a_dozen_levels_deep_is_fine():
    sql = "SELECT x FROM (" * 20 + "SELECT 1 AS x" + ")" * 20
    assert table_references(sql) == table_references("SELECT 1 AS x")


def test_duckdb_parser_has_the_last_word():
    # sqlglot and DuckDB must agree there is one SELECT; DuckDB is what runs the text.
    with pytest.raises(SqlError, match="exactly one"):
        check_one_select("SELECT 1 AS v; DROP TABLE raw.b")
    with pytest.raises(SqlError, match="PIVOT"):
        check_one_select("PIVOT raw.b ON k USING sum(v)")
    check_one_select("FROM raw.b SELECT k")
