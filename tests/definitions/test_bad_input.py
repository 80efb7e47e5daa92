"""Bad definitions: exit 2, one readable message naming file, feature and field, nothing written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import base_definition

runner = CliRunner()


def upstream_pair(**child_overrides):
    parent = base_definition(feature_name="parent_price")
    child = base_definition(
        feature_name="child_price",
        feature_type="derived",
        upstream_features=["parent_price"],
        sources=[],
        transformation={
            "code": "SELECT symbol, date, parent_price * 2 AS child_price"
            " FROM features.parent_price"
        },
    )
    child.update(child_overrides)
    return [parent, child]


def rule(rule_type, **parameters):
    return {"validation_rules": [{"rule_type": rule_type, "parameters": parameters}]}


# (case id, files {filename: payload | raw text}, expected substrings of the message)
CASES = [
    ("yaml_syntax", {"bad.yaml": "feature_name: [unclosed\n"}, ["bad.yaml", "YAML syntax error"]),
    (
        "unknown_field",
        {"a.yaml": base_definition(descripton="typo")},
        ["a.yaml", "close_price", "descripton", "unknown field"],
    ),
    (
        "missing_field",
        {"a.yaml": {k: v for k, v in base_definition().items() if k != "data_type"}},
        ["close_price", "data_type", "required"],
    ),
    ("bad_name", {"a.yaml": base_definition(feature_name="Close-Price")}, ["feature_name"]),
    (
        "invalid_semver",
        {"a.yaml": base_definition(version="1.0")},
        ["close_price", "version", "semantic version"],
    ),
    (
        "unknown_feature_type",
        {"a.yaml": base_definition(feature_type="magic")},
        ["feature_type", "magic"],
    ),
    ("unknown_data_type", {"a.yaml": base_definition(data_type="decimal")}, ["data_type"]),
    ("unknown_status", {"a.yaml": base_definition(status="live")}, ["status", "live"]),
    (
        "unknown_rule_type",
        {"a.yaml": base_definition(**rule("median_check"))},
        ["validation_rules[0].rule_type", "median_check"],
    ),
    (
        "unknown_rule_parameter",
        {"a.yaml": base_definition(**rule("range", minimum=0))},
        ["validation_rules[0].parameters", "minimum"],
    ),
    (
        "range_min_above_max",
        {"a.yaml": base_definition(**rule("range", min=10, max=1))},
        ["validation_rules[0].parameters", "greater than max"],
    ),
    (
        "negative_fraction",
        {"a.yaml": base_definition(**rule("null_check", max_null_fraction=-0.1))},
        ["max_null_fraction"],
    ),
    (
        "outlier_fraction_above_one",
        {"a.yaml": base_definition(**rule("outlier", max_outlier_fraction=2))},
        ["max_outlier_fraction"],
    ),
    (
        "bad_duration",
        {"a.yaml": base_definition(**rule("freshness", max_age="three days"))},
        ["max_age", "duration"],
    ),
    (
        "unknown_upstream",
        {"a.yaml": upstream_pair(upstream_features=["nope_price"])[1]},
        ["child_price", "upstream_features", "nope_price", "does not exist"],
    ),
    (
        "archived_upstream",
        {
            "p.yaml": base_definition(feature_name="parent_price", status="archived"),
            "c.yaml": upstream_pair()[1],
        },
        ["c.yaml", "child_price", "upstream_features", "archived"],
    ),
    (
        "cycle",
        {
            "a.yaml": base_definition(
                feature_name="aa_price",
                upstream_features=["bb_price"],
                sources=[],
                transformation={
                    "code": "SELECT symbol, date, bb_price AS aa_price FROM features.bb_price"
                },
            ),
            "b.yaml": base_definition(
                feature_name="bb_price",
                upstream_features=["aa_price"],
                sources=[],
                transformation={
                    "code": "SELECT symbol, date, aa_price AS bb_price FROM features.aa_price"
                },
            ),
        },
        ["cycle", "aa_price -> bb_price -> aa_price", "upstream_features"],
    ),
    (
        "undeclared_table",
        {
            "a.yaml": base_definition(
                transformation={"code": "SELECT symbol, date, close AS close_price FROM raw.other"}
            )
        },
        ["close_price", "transformation.code", "raw.other", "undeclared"],
    ),
    (
        "upstream_never_read",
        {
            "p.yaml": base_definition(feature_name="parent_price"),
            "c.yaml": upstream_pair(
                sources=["raw.prices"],
                transformation={
                    "code": "SELECT symbol, date, close AS child_price FROM raw.prices"
                },
            )[1],
        },
        ["child_price", "upstream_features", "parent_price", "never read"],
    ),
    (
        "sql_does_not_parse",
        {"a.yaml": base_definition(transformation={"code": "SELECT FROM WHERE ((("})},
        ["close_price", "transformation.code"],
    ),
    (
        "sql_not_select",
        {"a.yaml": base_definition(transformation={"code": "DROP TABLE raw.prices"})},
        ["close_price", "transformation.code", "SELECT"],
    ),
    (
        "missing_parameter",
        {
            "a.yaml": base_definition(
                transformation={
                    "code": "SELECT symbol, date, close * {{ factor }} AS close_price FROM raw.prices"
                }
            )
        },
        ["close_price", "transformation.code", "factor"],
    ),
    (
        "python_inline_code",
        {
            "a.yaml": base_definition(
                transformation={
                    "transformation_type": "python",
                    "code": "import os; os.remove('x')",
                }
            )
        },
        ["close_price", "transformation", "inline code is refused"],
    ),
    (
        "python_not_importable",
        {
            "a.yaml": base_definition(
                transformation={"transformation_type": "python", "code": "no_such_module_xyz:fn"}
            )
        },
        ["close_price", "transformation.code", "no_such_module_xyz"],
    ),
    (
        "tag_dagster_cannot_store",
        {"a.yaml": base_definition(tags=["has space"])},
        ["close_price", "tags", "Dagster tag"],
    ),
    ("bad_owner", {"a.yaml": base_definition(owner="quant team!")}, ["owner"]),
    ("bad_cron", {"a.yaml": base_definition(schedule="every day")}, ["schedule", "cron"]),
    (
        "same_table_twice",
        {
            "a.yaml": base_definition(duckdb_table="features.shared"),
            "b.yaml": base_definition(feature_name="other_price", duckdb_table="features.shared"),
        },
        ["other_price", "duckdb_table", "already written"],
    ),
    (
        "not_a_mapping",
        {"a.yaml": "- just\n- a list\n"},
        ["a.yaml", "mapping"],
    ),
]


def write_case(folder, files):
    for filename, content in files.items():
        if isinstance(content, str):
            folder.write_text(filename, content)
        else:
            folder.write(content, name=filename)


@pytest.mark.parametrize("case,files,expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", [["materialize"], ["list"]])
def test_bad_definition_exits_2_and_names_where(
    case, files, expected, command, definitions_folder, store_env, tmp_path
):
    write_case(definitions_folder, files)
    result = runner.invoke(app, command, env=store_env)
    assert result.exit_code == 2, result.output
    message = result.stderr
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert "Traceback" not in result.output
    # Nothing written: no lake, no registry.
    assert not (tmp_path / "lake.sqlite").exists() and not (tmp_path / "lake").exists()
    assert not (tmp_path / "registry.db").exists()


def test_duplicate_name_across_files_names_both(definitions_folder, store_env):
    definitions_folder.write(base_definition(), name="one.yaml")
    definitions_folder.write(base_definition(), name="two.yaml")
    result = runner.invoke(app, ["list"], env=store_env)
    assert result.exit_code == 2
    assert "one.yaml" in result.stderr and "two.yaml" in result.stderr
    assert "close_price" in result.stderr and "feature_name" in result.stderr


def test_every_error_of_a_load_is_reported_together(definitions_folder, store_env):
    definitions_folder.write(base_definition(descripton="x"), name="a.yaml")
    definitions_folder.write(
        base_definition(feature_name="other_price", version="x"), name="b.yaml"
    )
    definitions_folder.write_text("c.yaml", "feature_name: [\n")
    result = runner.invoke(app, ["list"], env=store_env)
    assert result.exit_code == 2
    assert "3 invalid feature definitions" in result.stderr
    for text in ("a.yaml", "b.yaml", "c.yaml"):
        assert text in result.stderr


def test_unknown_feature_exits_2_with_suggestion(definitions_folder, store_env, tmp_path):
    definitions_folder.write(base_definition())
    result = runner.invoke(app, ["materialize", "close_pryce"], env=store_env)
    assert result.exit_code == 2
    assert "unknown feature 'close_pryce'" in result.stderr
    assert "close_price" in result.stderr
    assert not (tmp_path / "lake.sqlite").exists()
