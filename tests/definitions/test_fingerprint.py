"""Data and metadata fingerprints: pinned hashes, then one field changed at a time."""

from __future__ import annotations

import sys
import textwrap

import pytest

from featurestore_dagster.definitions.fingerprint import (
    data_components,
    data_fingerprint,
    fingerprints,
    metadata_fingerprint,
    normalized_code,
)
from featurestore_dagster.definitions.models import FeatureDefinition
from tests.conftest import base_definition

# Pinned: a change here changes every registered feature's identity. Only change these on
# purpose (and say so in the changelog).
BASE_DATA = "5997bf544084ade879400ee7c1b0be8afb2f5574f80f3bc99150a6e7b13a56c5"
BASE_METADATA = "8e4a9834376c70835c6759514a0cc4c637add8912fe34985e4f9fca82b8d9795"


def definition(**overrides) -> FeatureDefinition:
    return FeatureDefinition.model_validate(base_definition(**overrides))


def sql(code: str, **parameters) -> dict:
    return {"transformation_type": "sql", "code": code, "parameters": parameters}


def test_pinned_hashes():
    assert fingerprints(definition()) == (BASE_DATA, BASE_METADATA)


# (case, overrides, data fingerprint changes, metadata fingerprint changes)
CASES = [
    # formatting of the SQL is no change
    (
        "sql_whitespace",
        {
            "transformation": sql(
                "SELECT  symbol,\n\tdate ,\n close AS close_price\nFROM raw.prices"
            )
        },
        False,
        False,
    ),
    (
        "sql_comments",
        {
            "transformation": sql(
                "-- the close\nSELECT symbol, date, /* raw */ close AS close_price"
                " FROM raw.prices -- done"
            )
        },
        False,
        False,
    ),
    (
        "sql_keyword_case",
        {"transformation": sql("select symbol, date, close as close_price from raw.prices")},
        False,
        False,
    ),
    ("version", {"version": "9.9.9"}, False, False),
    ("changelog", {"changelog": "Another text"}, False, False),
    ("breaking_flag", {"breaking_changes": True}, False, False),
    ("explicit_default_table", {"duckdb_table": "features.close_price"}, False, False),
    # data
    (
        "sql_logic",
        {"transformation": sql("SELECT symbol, date, close * 2 AS close_price FROM raw.prices")},
        True,
        False,
    ),
    (
        "parameters",
        {
            "transformation": sql(
                "SELECT symbol, date, close * {{ k }} AS close_price FROM raw.prices", k=2
            )
        },
        True,
        False,
    ),
    ("data_type", {"data_type": "integer"}, True, False),
    ("entity_columns", {"entity_columns": ["ticker"]}, True, False),
    ("timestamp_column", {"timestamp_column": "day"}, True, False),
    ("sources", {"sources": ["raw.prices", "raw.other"]}, True, False),
    (
        "validation_rules",
        {"validation_rules": [{"rule_type": "range", "parameters": {"min": 1}}]},
        True,
        False,
    ),
    ("duckdb_table", {"duckdb_table": "prices.close"}, True, False),
    # metadata
    ("description", {"description": "Closing price"}, False, True),
    ("description_spacing", {"description": "Daily   close"}, False, False),
    ("owner", {"owner": "data-team"}, False, True),
    ("tags", {"tags": ["price", "daily"]}, False, True),
    ("schedule", {"schedule": "0 22 * * 1-5"}, False, True),
    ("status", {"status": "deprecated"}, False, True),
    ("feature_type", {"feature_type": "derived"}, False, True),
]


@pytest.mark.parametrize(
    "overrides,data_changes,metadata_changes",
    [pytest.param(o, d, m, id=case) for case, o, d, m in CASES],
)
def test_one_field_at_a_time(overrides, data_changes, metadata_changes):
    data, metadata = fingerprints(definition(**overrides))
    assert (data != BASE_DATA) is data_changes
    assert (metadata != BASE_METADATA) is metadata_changes


def test_parameter_placeholders_normalize_without_values():
    one = definition(
        transformation=sql(
            "SELECT symbol, date, avg(close) OVER (ROWS {{ n }} PRECEDING) AS close_price"
            " FROM raw.prices",
            n=3,
        )
    )
    assert normalized_code(one) == (
        "SELECT symbol, date, AVG(close) OVER (ROWS BETWEEN $n PRECEDING AND CURRENT ROW)"
        " AS close_price FROM raw.prices"
    )
    other = one.model_copy(
        update={"transformation": one.transformation.model_copy(update={"parameters": {"n": 5}})}
    )
    assert normalized_code(other) == normalized_code(one)
    assert data_fingerprint(other) != data_fingerprint(one)


def test_tag_order_does_not_count():
    assert metadata_fingerprint(definition(tags=["a", "b"])) == metadata_fingerprint(
        definition(tags=["b", "a"])
    )


def test_upstream_order_does_not_count():
    a = data_components(definition(upstream_features=["x", "y"]))
    b = data_components(definition(upstream_features=["y", "x"]))
    assert a["upstream_features"] == b["upstream_features"] == ["x", "y"]


def test_python_function_source_counts(tmp_path, monkeypatch):
    """A python transformation's fingerprint follows the function's source, not only the
    ``module:function`` reference."""
    body = """
        def build(conn, inputs):
            return inputs["raw.prices"]{suffix}
    """
    for name, suffix in (("fp_mod_a", ""), ("fp_mod_b", ".limit(10)"), ("fp_mod_c", "")):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body.format(suffix=suffix)))
    monkeypatch.syspath_prepend(str(tmp_path))

    def python(module: str) -> FeatureDefinition:
        return definition(
            transformation={"transformation_type": "python", "code": f"{module}:build"}
        )

    a, b, c = python("fp_mod_a"), python("fp_mod_b"), python("fp_mod_c")
    assert data_components(a)["transformation.source"].startswith("def build(conn, inputs):")
    assert data_fingerprint(a) != data_fingerprint(b)
    # Same source, different module: the reference itself is part of the identity.
    assert data_fingerprint(a) != data_fingerprint(c)
    assert metadata_fingerprint(a) == metadata_fingerprint(b) == BASE_METADATA


def test_python_source_is_read_without_importing_anything(tmp_path, monkeypatch):
    """The function is found in its file: the package's ``__init__`` (which would write a
    file) never runs, and a re-export (``from .impl import build``) is followed to its def."""
    marker = tmp_path / "imported"
    package = tmp_path / "fp_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n"
    )
    (package / "impl.py").write_text("def build(conn, inputs):\n    return inputs\n")
    (package / "api.py").write_text("from .impl import build as build\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def python(code: str) -> FeatureDefinition:
        return definition(transformation={"transformation_type": "python", "code": code})

    direct = data_components(python("fp_pkg.impl:build"))["transformation.source"]
    exported = data_components(python("fp_pkg.api:build"))["transformation.source"]
    assert direct == exported and direct.startswith("def build(conn, inputs):")
    assert not marker.exists()
    assert "fp_pkg" not in sys.modules
