"""The unique_key proof: sound on every query that can duplicate keys, useful on the rest.

Each adversarial query is also run in DuckDB over an upstream whose key is unique, to show
that it really does produce duplicate (or NULL) keys: a proof for any of them would publish a
table with a broken key.
"""

from __future__ import annotations

import duckdb
import pytest

from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.uniqueness import unique_key_proof
from tests.conftest import base_definition


def definition(name="f", upstream=("up",), entity_columns=("symbol",), **overrides):
    payload = base_definition(
        feature_name=name,
        feature_type="derived",
        entity_columns=list(entity_columns),
        upstream_features=list(upstream),
        sources=[],
        transformation={"code": "SELECT 1"},
        validation_rules=[],
    )
    payload.update(overrides)
    return FeatureDefinition.model_validate(payload)


UP = definition("up", upstream=())
UP_BY_TICKER = definition("up", upstream=(), entity_columns=("ticker",))


@pytest.fixture(scope="module")
def conn():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    # Unique key (symbol, date); values repeat across keys; two symbols share every date.
    conn.execute(
        "CREATE TABLE features.up AS SELECT s AS symbol, DATE '2024-01-01' + d::INTEGER AS date,"
        " (d % 2)::DOUBLE AS up FROM (VALUES ('A'), ('B')) v(s), range(3) r(d)"
    )
    conn.execute("CREATE MACRO spread(x) AS unnest([x, x])")
    return conn


def broken_keys(conn, sql, key=("symbol", "date")) -> bool:
    columns = ", ".join(key)
    nulls = " OR ".join(f"{c} IS NULL" for c in key)
    row = conn.execute(
        f"SELECT count(*) - count(DISTINCT ({columns})), count(*) FILTER ({nulls})"
        f" FROM ({sql}) AS q"
    ).fetchone()
    return row[0] > 0 or row[1] > 0


DUPLICATING = {
    "union all": "SELECT symbol, date, up AS f FROM features.up"
    " UNION ALL SELECT symbol, date, up FROM features.up",
    "union": "SELECT symbol, date, up AS f FROM features.up"
    " UNION SELECT symbol, date, up + 1 FROM features.up",
    "self join": "SELECT a.symbol, a.date, b.up AS f FROM features.up a"
    " JOIN features.up b USING (symbol)",
    "left join": "SELECT b.symbol, a.date, a.up AS f FROM features.up a"
    " LEFT JOIN features.up b ON a.up > 5",
    "comma join": "SELECT a.symbol, a.date, a.up AS f FROM features.up a, features.up b",
    "unnest in select": "SELECT symbol, date, unnest([up, up]) AS f FROM features.up",
    "UNNEST in from": "SELECT symbol, date, x AS f FROM features.up, UNNEST([1.0, 2.0]) t(x)",
    "generate_subscripts macro": "SELECT symbol, date, generate_subscripts([1, 2], 1)::DOUBLE"
    " AS f FROM features.up",
    "user macro": "SELECT symbol, date, spread(up) AS f FROM features.up",
    "range table function": "SELECT symbol, date, up AS f FROM features.up, range(2)",
    "lateral": "SELECT symbol, date, x AS f FROM features.up,"
    " LATERAL (SELECT up AS x UNION ALL SELECT up)",
    "subquery in from": "SELECT symbol, date, up AS f FROM"
    " (SELECT * FROM features.up UNION ALL SELECT * FROM features.up)",
    "cte": "WITH d AS (SELECT * FROM features.up UNION ALL SELECT * FROM features.up)"
    " SELECT symbol, date, up AS f FROM d",
    "key from an expression": "SELECT symbol, date_trunc('month', date)::DATE AS date,"
    " up AS f FROM features.up",
    "key from another column": "SELECT symbol, date, x AS f FROM features.up AS t(symbol, x, date)",
    "key from a constant": "SELECT symbol, DATE '2024-01-01' AS date, up AS f FROM features.up",
    "key swapped in by a lateral alias": "SELECT symbol, date AS d, up AS date, up AS f"
    " FROM features.up",
    "grouping sets": "SELECT symbol, date, sum(up) AS f FROM features.up"
    " GROUP BY GROUPING SETS ((symbol, date), (symbol, date))",
    "rollup": "SELECT symbol, date, sum(up) AS f FROM features.up GROUP BY ROLLUP (symbol, date)",
    "unpivot": "SELECT symbol, date, v AS f FROM"
    " (SELECT symbol, date, up, up AS up2 FROM features.up) UNPIVOT (v FOR n IN (up, up2))",
}

REFUSED_WITHOUT_DUPLICATES = {
    "star": "SELECT * FROM features.up",
    "in subquery": "SELECT symbol, date, up AS f FROM features.up"
    " WHERE symbol IN (SELECT symbol FROM features.up)",
    "scalar subquery": "SELECT symbol, date, (SELECT max(up) FROM features.up) AS f"
    " FROM features.up",
    "asof join": "SELECT a.symbol, a.date, b.up AS f FROM features.up a"
    " ASOF JOIN features.up b ON a.symbol = b.symbol AND a.date >= b.date",
    "positional join": "SELECT a.symbol, a.date, b.up AS f FROM features.up a"
    " POSITIONAL JOIN features.up b",
    "group by key": "SELECT symbol, date, max(up) AS f FROM features.up GROUP BY symbol, date",
    "cast key": "SELECT symbol, CAST(date AS DATE) AS date, up AS f FROM features.up",
    "struct-like qualifier": "SELECT x.symbol, date, up AS f FROM features.up",
    "another table": "SELECT symbol, date, up AS f FROM features.other",
    "time travel": "SELECT symbol, date, up AS f FROM features.up AT (VERSION => 1)",
    "sample": "SELECT symbol, date, up AS f FROM features.up USING SAMPLE 50%",
}

PROVEN = {
    "projection": "SELECT symbol, date, up * 2 AS f FROM features.up",
    "window": "SELECT symbol, date, avg(up) OVER (PARTITION BY symbol ORDER BY date"
    " ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS f FROM features.up",
    "lag": "SELECT symbol, date, up - lag(up) OVER (PARTITION BY symbol ORDER BY date) AS f"
    " FROM features.up",
    "alias and filter": "SELECT u.symbol, u.date, u.up AS f FROM features.up AS u WHERE u.up > 0",
    "qualify": "SELECT symbol, date, up AS f FROM features.up"
    " QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date) > 1",
    "count star window": "SELECT symbol, date, count(*) OVER (PARTITION BY symbol) AS f"
    " FROM features.up",
    "from first": "FROM features.up SELECT symbol, date, up AS f",
    "order and limit": "SELECT date, symbol, up AS f FROM features.up ORDER BY date LIMIT 3",
    "distinct": "SELECT DISTINCT symbol, date, up AS f FROM features.up",
}


@pytest.mark.parametrize("sql", DUPLICATING.values(), ids=DUPLICATING.keys())
def test_a_query_that_duplicates_keys_is_never_proven(conn, sql):
    assert broken_keys(conn, sql)
    assert unique_key_proof(definition(), {"up": UP}, sql) is None


@pytest.mark.parametrize(
    "sql", REFUSED_WITHOUT_DUPLICATES.values(), ids=REFUSED_WITHOUT_DUPLICATES.keys()
)
def test_shapes_the_analysis_does_not_follow_are_not_proven(sql):
    assert unique_key_proof(definition(), {"up": UP}, sql) is None


@pytest.mark.parametrize("sql", PROVEN.values(), ids=PROVEN.keys())
def test_projections_and_windows_over_one_upstream_are_proven(conn, sql):
    assert not broken_keys(conn, sql)
    proof = unique_key_proof(definition(), {"up": UP}, sql)
    assert proof is not None and proof.upstream == "up"
    assert "no join" in proof.reason


def test_a_renamed_key_column_is_followed():
    sql = "SELECT ticker AS symbol, date, up AS f FROM features.up"
    proof = unique_key_proof(definition(), {"up": UP_BY_TICKER}, sql)
    assert proof is not None and "ticker AS symbol" in proof.reason


@pytest.mark.parametrize(
    "feature,sql",
    [
        # A global series read from a per-symbol feature: several symbols share a date.
        (definition(entity_columns=()), "SELECT date, up AS f FROM features.up"),
        # Two upstreams, a source, a python transformation: never analysed.
        (definition(upstream=("up", "other")), "SELECT symbol, date, up AS f FROM features.up"),
        (
            definition(sources=["raw.prices"]),
            "SELECT symbol, date, up AS f FROM features.up",
        ),
        (
            definition(transformation={"transformation_type": "python", "code": "m:f"}),
            "SELECT symbol, date, up AS f FROM features.up",
        ),
        # The key's timestamp taken from a non-key column of the upstream.
        (definition(timestamp_column="up"), "SELECT symbol, up, up AS f FROM features.up"),
    ],
    ids=["global from keyed", "two upstreams", "source", "python", "non-key timestamp"],
)
def test_definitions_that_cannot_be_proven(conn, feature, sql):
    assert unique_key_proof(feature, {"up": UP}, sql) is None


def test_the_dropped_key_column_really_duplicates(conn):
    assert broken_keys(conn, "SELECT date, up AS f FROM features.up", key=("date",))
