"""The leakage guard: SQL that can see the future is found by parsing and marked at load."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.leakage import lookahead_reasons
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError
from tests.conftest import base_definition

T = "SELECT symbol, date, {expr} AS f FROM t"


@pytest.mark.parametrize(
    "expr,reason",
    [
        ("LEAD(x) OVER (PARTITION BY symbol ORDER BY date)", "reads a later row"),
        ("LEAD(x, 5) OVER (PARTITION BY symbol ORDER BY date)", "reads a later row"),
        ("LAG(x, -1) OVER (PARTITION BY symbol ORDER BY date)", "negative offset"),
        ("LAG(x, -(2)) OVER (PARTITION BY symbol ORDER BY date)", "negative offset"),
        ("LAG(x, n) OVER (PARTITION BY symbol ORDER BY date)", "not a constant"),
        (
            "AVG(x) OVER (PARTITION BY symbol ORDER BY date"
            " ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING)",
            "FOLLOWING",
        ),
        (
            "SUM(x) OVER (PARTITION BY symbol ORDER BY date"
            " ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)",
            "FOLLOWING",
        ),
        ("LAG(x) OVER (PARTITION BY symbol ORDER BY date DESC)", "descending"),
        ("x - AVG(x) OVER (PARTITION BY symbol)", "every row of its partition"),
        ("MAX(x) OVER ()", "every row of its partition"),
    ],
)
def test_sql_that_sees_the_future(expr, reason):
    reasons = lookahead_reasons(T.format(expr=expr), "date")
    assert reasons and any(reason in r for r in reasons), reasons


@pytest.mark.parametrize(
    "expr",
    [
        "x",
        "LAG(x) OVER (PARTITION BY symbol ORDER BY date)",
        "LAG(x, 3) OVER (PARTITION BY symbol ORDER BY date)",
        "AVG(x) OVER (PARTITION BY symbol ORDER BY date ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)",
        "AVG(x) OVER (PARTITION BY symbol ORDER BY date ROWS BETWEEN 19 PRECEDING AND 0 FOLLOWING)",
        # A cross-section of one date sees only rows of that date.
        "x - AVG(x) OVER (PARTITION BY date)",
        "RANK() OVER (PARTITION BY date ORDER BY x DESC)",
        "SUM(x) OVER (PARTITION BY symbol ORDER BY date)",
    ],
)
def test_sql_that_only_looks_back(expr):
    assert lookahead_reasons(T.format(expr=expr), "date") == ()


def test_named_windows_are_resolved():
    sql = (
        "SELECT symbol, date, SUM(x) OVER w AS f FROM t"
        " WINDOW w AS (PARTITION BY symbol ORDER BY date ROWS BETWEEN 1 PRECEDING AND 3 FOLLOWING)"
    )
    assert any("FOLLOWING" in r for r in lookahead_reasons(sql, "date"))
    safe = sql.replace("3 FOLLOWING", "CURRENT ROW")
    assert lookahead_reasons(safe, "date") == ()


def _definition(**overrides) -> FeatureDefinition:
    return FeatureDefinition.model_validate(base_definition(**overrides))


def test_marked_at_load_sql_and_python():
    lead = _definition(
        transformation={
            "code": "SELECT symbol, date, LEAD(close, {{ n }}) OVER (PARTITION BY symbol"
            " ORDER BY date) AS close_price FROM raw.prices",
            "parameters": {"n": 1},
        }
    )
    assert lead.is_lookahead
    negative = _definition(
        transformation={
            "code": "SELECT symbol, date, LAG(close, {{ n }}) OVER (PARTITION BY symbol"
            " ORDER BY date) AS close_price FROM raw.prices",
            "parameters": {"n": -5},
        }
    )
    assert any("negative" in r for r in negative.lookahead_reasons)
    assert not _definition().is_lookahead
    python = _definition(
        transformation={"transformation_type": "python", "code": "pkg.mod:fn"}, lookahead=True
    )
    assert python.is_lookahead and python.lookahead_reasons == ("declared lookahead: true",)
    assert not _definition(
        transformation={"transformation_type": "python", "code": "pkg.mod:fn"}, lookahead=False
    ).is_lookahead


def test_declaring_false_on_lookahead_sql_is_an_error():
    payload = base_definition(
        lookahead=False,
        transformation={
            "code": "SELECT symbol, date, LEAD(close) OVER (PARTITION BY symbol ORDER BY date)"
            " AS close_price FROM raw.prices"
        },
    )
    with pytest.raises(DefinitionError, match="field 'lookahead'.*LEAD"):
        FeatureGraph.from_definitions([FeatureDefinition.model_validate(payload)])


def test_ttl_field_is_checked():
    assert _definition(ttl="30d").ttl_seconds == 30 * 86400
    with pytest.raises(ValueError, match="positive duration"):
        _definition(ttl="soon")


def test_show_and_dagster_metadata_mark_lookahead(store_env, definitions_folder):
    definitions_folder.write(
        base_definition(
            transformation={
                "code": "SELECT symbol, date, LEAD(close) OVER (PARTITION BY symbol ORDER BY date)"
                " AS close_price FROM raw.prices"
            }
        )
    )
    result = CliRunner().invoke(app, ["show", "close_price", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["lookahead"] is True and "LEAD" in data["lookahead_reasons"][0]
    text = CliRunner().invoke(app, ["show", "close_price"])
    assert "lookahead" in text.output and "True" in text.output

    from featurestore_dagster.orchestration.translator import FeatureTranslator

    graph = FeatureGraph.load(definitions_folder.path)
    translator = FeatureTranslator()
    metadata = translator.get_metadata(graph["close_price"])
    assert metadata["lookahead"] is True and "LEAD" in metadata["lookahead_reasons"]
    assert "lookahead" in translator.get_tags(graph["close_price"])
