"""Binding SQL against its inputs' schemas without running it: plan and check refuse a misnamed
output column, an unknown input column or a wrong output type, naming file, feature, field and
both names. Real DuckDB, real CLI."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.definitions.binder import bind_graph
from featurestore_dagster.definitions.graph import FeatureGraph
from tests.conftest import base_definition

runner = CliRunner()

CLOSE = (
    "SELECT symbol, CAST(date AS DATE) AS date, close AS stock_daily_close FROM (VALUES"
    " ('a', '2024-01-02', 1.5)) AS t(symbol, date, close)"
)


def close(**overrides):
    return base_definition(
        feature_name="stock_daily_close", sources=[], transformation={"code": CLOSE}, **overrides
    )


def sma(select="avg(stock_daily_close) OVER w AS stock_sma_20d", **overrides):
    return base_definition(
        feature_name="stock_sma_20d",
        feature_type="technical_indicator",
        sources=[],
        upstream_features=["stock_daily_close"],
        transformation={
            "code": f"SELECT symbol, date, {select} FROM features.stock_daily_close"
            " WINDOW w AS (PARTITION BY symbol ORDER BY date ROWS 19 PRECEDING)"
        },
        **overrides,
    )


@pytest.mark.parametrize(
    "payload,field,phrases",
    [
        (
            sma("avg(stock_daily_close) OVER w AS sma"),
            "transformation.code",
            ["output column 'sma' should be named 'stock_sma_20d'"],
        ),
        (
            sma("avg(close_price) OVER w AS stock_sma_20d"),
            "transformation.code",
            [
                "SQL reads column 'close_price', which none of its inputs has",
                "features.stock_daily_close: symbol, date, stock_daily_close",
                "did you mean 'stock_daily_close'?",
            ],
        ),
        (
            sma("CAST(avg(stock_daily_close) OVER w AS VARCHAR) AS stock_sma_20d"),
            "data_type",
            ["output column 'stock_sma_20d' is VARCHAR, but data_type is float"],
        ),
        (
            sma("avg(stock_daily_close) OVER w AS stock_sma_20d, 1 AS extra"),
            "transformation.code",
            [
                "expected columns symbol, date, stock_sma_20d; found symbol, date, stock_sma_20d, extra"
            ],
        ),
    ],
    ids=["misnamed_output", "unknown_input", "wrong_type", "extra_column"],
)
def test_plan_binds_sql_without_running_it(definitions_folder, store_env, payload, field, phrases):
    definitions_folder.write(close())
    path = definitions_folder.write(payload)
    result = runner.invoke(app, ["plan"], env=store_env)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"{path}, feature 'stock_sma_20d', field '{field}'" in message
    for phrase in phrases:
        assert phrase in message
    check = runner.invoke(app, ["check"], env=store_env)
    assert check.exit_code == 2 and phrases[0] in " ".join(check.stderr.split())
    assert not (definitions_folder.root / "lake.sqlite").exists()  # nothing was built


def test_a_correct_graph_binds_cleanly(definitions_folder):
    definitions_folder.write(close())
    definitions_folder.write(sma())
    assert bind_graph(FeatureGraph.load(definitions_folder.path), {}) == []


def test_sources_bind_against_their_real_schema(definitions_folder, tmp_path):
    definitions_folder.write(
        base_definition(
            transformation={"code": "SELECT symbol, date, px AS close_price FROM raw.prices"}
        )
    )
    graph = FeatureGraph.load(definitions_folder.path)
    # Unknown source (not loaded yet): nothing is claimed.
    assert bind_graph(graph, {}) == []
    conn = duckdb.connect()
    conn.execute(
        "CREATE SCHEMA raw; CREATE TABLE raw.prices (symbol VARCHAR, date DATE, close DOUBLE)"
    )
    from featurestore_dagster.definitions.binder import table_schemas

    [issue] = bind_graph(graph, table_schemas(conn))
    assert issue.field == "transformation.code" and issue.feature == "close_price"
    assert "SQL reads column 'px'" in issue.message and "raw.prices: symbol, date, close" in (
        issue.message
    )
    assert "did you mean 'close'?" in issue.message


def test_the_bind_cache_never_hides_a_new_problem(definitions_folder):
    definitions_folder.write(close())
    definitions_folder.write(sma())
    cache: dict = {}
    assert bind_graph(FeatureGraph.load(definitions_folder.path), {}, cache) == []
    assert len(cache) == 2
    definitions_folder.write(sma(data_type="integer"))
    [issue] = bind_graph(FeatureGraph.load(definitions_folder.path), {}, cache)
    assert issue.field == "data_type" and "is DOUBLE, but data_type is integer" in issue.message
