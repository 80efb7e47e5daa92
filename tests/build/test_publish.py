"""Write-audit-publish through real Dagster runs into a real lake (SQLite catalog)."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import base_definition, double_price_definition, open_test_lake

runner = CliRunner()


def seed_prices(lake, rows=((1, 10.0), (2, 11.0), (3, 12.0))):
    """(Re)load raw.prices into the lake of the environment ``lake``."""
    conn = open_test_lake(lake)
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute("CREATE OR REPLACE TABLE raw.prices (symbol VARCHAR, date DATE, close DOUBLE)")
    for day, close in rows:
        for symbol in ("AAA", "BBB"):
            conn.execute(
                "INSERT INTO raw.prices VALUES (?, DATE '2024-01-01' + ?::INTEGER, ?)",
                [symbol, day, close],
            )
    conn.close()


def child(**overrides):
    transformation = {
        "code": "SELECT symbol, date, close_price * {{ k }} AS double_price"
        " FROM features.close_price",
        "parameters": {"k": 2},
    }
    return double_price_definition(**{"transformation": transformation, **overrides})


def table_rows(lake, table):
    conn = open_test_lake(lake, read_only=True)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    finally:
        conn.close()


def table_digest(lake, table):
    return hashlib.sha256(repr(table_rows(lake, table)).encode()).hexdigest()


@pytest.fixture
def project(definitions_folder, store_env, tmp_path):
    seed_prices(store_env)
    definitions_folder.write(base_definition())
    definitions_folder.write(child())
    return definitions_folder, store_env, store_env


def materialize(env, *args):
    return runner.invoke(app, ["materialize", *args], env=env)


def test_materialize_publishes_tables_and_prints_summary(project):
    _, lake, env = project
    result = materialize(env)
    assert result.exit_code == 0, result.output
    assert "close_price" in result.stdout and "double_price" in result.stdout
    assert "published" in result.stdout
    assert table_rows(lake, "features.double_price")[0] == ("AAA", _date(1), 20.0)
    # Nothing left in staging.
    conn = open_test_lake(lake, read_only=True)
    names = {
        r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    conn.close()
    assert not any(n.startswith("__staging_") for n in names)


def test_materialize_json_lists_every_build(project):
    _, _, env = project
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    assert builds["close_price"]["rows"] == 6
    assert builds["double_price"]["status"] == "published"
    names = {c["name"] for c in builds["close_price"]["checks"]}
    assert {"schema", "unique_key", "range"} <= names


def test_selected_feature_builds_its_upstream_only(project, definitions_folder):
    folder, lake, env = project
    folder.write(
        child(
            feature_name="other_price",
            transformation={
                "code": "SELECT symbol, date, close_price AS other_price FROM features.close_price"
            },
        )
    )
    result = materialize(env, "double_price", "--json")
    assert result.exit_code == 0, result.output
    assert {b["feature_name"] for b in json.loads(result.stdout)} == {"close_price", "double_price"}


def test_blocking_failure_keeps_live_table_and_skips_downstream(project):
    folder, lake, env = project
    assert materialize(env).exit_code == 0
    before = table_digest(lake, "features.close_price")
    downstream_before = table_digest(lake, "features.double_price")
    # New raw data with a negative close violates the blocking range rule.
    seed_prices(lake, rows=((1, 10.0), (2, -5.0), (3, 12.0), (4, 13.0)))
    result = materialize(env, "--json")
    assert result.exit_code == 1
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    assert builds["close_price"]["status"] == "rejected"
    failed = [c for c in builds["close_price"]["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["range"]
    assert failed[0]["metadata"]["failing_rows"] == 2
    assert builds["double_price"]["status"] == "skipped"
    # Live tables byte-identical; rejected rows inspectable.
    assert table_digest(lake, "features.close_price") == before
    assert table_digest(lake, "features.double_price") == downstream_before
    rejected = table_rows(lake, builds["close_price"]["rejected_table"])
    assert len(rejected) == 8 and min(r[2] for r in rejected) == -5.0


def test_blocking_failure_human_output_names_check(project):
    _, lake, env = project
    seed_prices(lake, rows=((1, -1.0),))
    result = materialize(env)
    assert result.exit_code == 1
    assert "rejected" in result.stdout and "range" in result.stdout
    assert "_rejected.close_price" in result.stderr


def test_non_blocking_failure_publishes_with_warning(project):
    folder, lake, env = project
    folder.write(
        base_definition(
            validation_rules=[
                {"rule_type": "range", "parameters": {"max": 5}, "is_blocking": False}
            ]
        )
    )
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    assert builds["close_price"]["status"] == "published"
    assert [c["passed"] for c in builds["close_price"]["checks"] if c["name"] == "range"] == [False]
    assert builds["double_price"]["status"] == "published"


def test_wrong_output_type_fails_schema_check(project):
    folder, lake, env = project
    folder.write(
        base_definition(
            data_type="integer",
            transformation={"code": "SELECT symbol, date, close AS close_price FROM raw.prices"},
        )
    )
    result = materialize(env, "--json")
    assert result.exit_code == 1
    build = json.loads(result.stdout)[0]
    assert build["status"] == "rejected"
    schema = next(c for c in build["checks"] if c["name"] == "schema")
    assert not schema["passed"]


def test_missing_source_table_fails_clearly(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    result = materialize(store_env, "--json")
    assert result.exit_code == 1
    build = json.loads(result.stdout)[0]
    assert build["status"] == "failed"
    assert "raw.prices" in build["error"] and "does not exist" in build["error"]


def test_sql_runtime_error_is_reported_not_raised(project):
    folder, lake, env = project
    folder.write(
        base_definition(
            transformation={"code": "SELECT symbol, date, nope AS close_price FROM raw.prices"}
        )
    )
    result = materialize(env)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "nope" in result.stderr


@pytest.mark.parametrize("kind", ["pandas", "arrow", "relation"])
def test_python_transformation_results_go_into_duckdb(project, kind, tmp_path, monkeypatch):
    folder, lake, env = project
    module = tmp_path / "my_transforms.py"
    module.write_text(
        "def compute(conn, inputs, factor, kind):\n"
        "    rel = inputs['close_price'].project(f'symbol, date, close_price * {factor} AS tripled')\n"
        "    if kind == 'pandas':\n"
        "        return rel.df()\n"
        "    if kind == 'arrow':\n"
        "        return rel.arrow()\n"
        "    return rel\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    folder.write(
        child(
            feature_name="tripled",
            transformation={
                "transformation_type": "python",
                "code": "my_transforms:compute",
                "parameters": {"factor": 3, "kind": kind},
            },
        )
    )
    result = materialize(env, "tripled", "--json")
    assert result.exit_code == 0, result.output
    symbol, date, value = table_rows(lake, "features.tripled")[0]
    # pandas turns DATE into datetime64 (TIMESTAMP); both satisfy the schema check.
    assert (symbol, getattr(date, "date", lambda: date)(), value) == ("AAA", _date(1), 30.0)


def test_check_command_writes_junit_and_gates(project, tmp_path):
    _, lake, env = project
    report = tmp_path / "junit.xml"
    assert runner.invoke(app, ["apply"], env=env).exit_code == 0
    result = runner.invoke(app, ["check", "--junit-xml", str(report)], env=env)
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert 'testsuite name="close_price"' in text and 'failures="0"' in text
    seed_prices(lake, rows=((1, -1.0),))
    result = runner.invoke(app, ["check", "--junit-xml", str(report)], env=env)
    assert result.exit_code == 1
    assert "<failure" in report.read_text()


def _date(day):
    import datetime

    return datetime.date(2024, 1, 1) + datetime.timedelta(days=day)


def test_junit_counts_a_skipped_feature_as_skipped_not_failed(project, tmp_path):
    from xml.etree import ElementTree

    _, lake, env = project
    assert runner.invoke(app, ["apply"], env=env).exit_code == 0
    seed_prices(lake, rows=((1, -1.0),))
    report = tmp_path / "junit.xml"
    assert runner.invoke(app, ["check", "--junit-xml", str(report)], env=env).exit_code == 1
    suites = {s.get("name"): s for s in ElementTree.parse(report).getroot()}
    child_suite = suites["double_price"]
    assert child_suite.get("failures") == "0"
    assert child_suite.find("testcase/skipped") is not None
    assert suites["close_price"].get("failures") == "1"


def lake_state(lake):
    """(schema version, snapshot id) of the lake's current snapshot."""
    conn = open_test_lake(lake, read_only=True)
    try:
        return conn.execute(
            "SELECT schema_version, snapshot_id FROM featurestore.snapshots()"
            " ORDER BY snapshot_id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()


def test_republish_with_same_columns_swaps_rows_without_a_schema_change(project):
    folder, lake, env = project
    first = json.loads(materialize(env, "--json").stdout)
    seed_prices(lake, rows=((1, 20.0), (2, 21.0)))
    schema_before, _ = lake_state(lake)
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    # Rows replaced by DML: the lake's schema version did not move (no catalog reload).
    assert lake_state(lake)[0] == schema_before
    assert table_rows(lake, "features.double_price") == [
        ("AAA", _date(1), 40.0),
        ("AAA", _date(2), 42.0),
        ("BBB", _date(1), 40.0),
        ("BBB", _date(2), 42.0),
    ]
    assert table_rows(lake, "_latest.close_price") == [
        ("AAA", _date(2), 21.0),
        ("BBB", _date(2), 21.0),
    ]
    # Each build names its own commit; the first version stays readable by time travel.
    second = json.loads(result.stdout)
    assert all(b["snapshot_id"] > a["snapshot_id"] for a, b in zip(first, second, strict=True))
    old = next(b["snapshot_id"] for b in first if b["feature_name"] == "double_price")
    conn = open_test_lake(lake, read_only=True)
    try:
        assert conn.execute(
            f"SELECT count(*), max(double_price) FROM features.double_price AT (VERSION => {old})"
        ).fetchone() == (6, 24.0)
    finally:
        conn.close()


def seed_many_prices(lake, rows):
    """raw.prices with ``rows`` rows (two symbols), loaded in one statement."""
    conn = open_test_lake(lake)
    conn.execute(
        "CREATE OR REPLACE TABLE raw.prices AS SELECT CASE WHEN i % 2 = 0 THEN 'AAA' ELSE 'BBB'"
        " END AS symbol, DATE '1900-01-01' + (i // 2)::INTEGER AS date, 10.0 + i % 7 AS close"
        f" FROM range({rows}) t(i)"
    )
    conn.close()


def test_republish_of_a_large_table_recreates_it_instead_of_deleting_every_row(project):
    # Deleting 300,000 rows costs more than the catalog reload a DROP + CREATE causes (see
    # build.publish): the large live tables are recreated, the two-row latest tables keep
    # their rows' way only when nothing else in the transaction changed the schema.
    folder, lake, env = project
    seed_many_prices(lake, 300_000)
    first = json.loads(materialize(env, "--json").stdout)
    schema_before, _ = lake_state(lake)
    seed_many_prices(lake, 200_000)
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    assert lake_state(lake)[0] > schema_before
    conn = open_test_lake(lake, read_only=True)
    try:
        assert conn.execute("SELECT count(*) FROM features.double_price").fetchone() == (200_000,)
        assert conn.execute("SELECT count(*) FROM _latest.double_price").fetchone() == (2,)
        old = next(b["snapshot_id"] for b in first if b["feature_name"] == "double_price")
        assert conn.execute(
            f"SELECT count(*) FROM features.double_price AT (VERSION => {old})"
        ).fetchone() == (300_000,)
    finally:
        conn.close()
    # A rebuild of the same small data afterwards swaps rows again (no schema change).
    seed_prices(lake)
    assert materialize(env).exit_code == 0
    schema_small, _ = lake_state(lake)
    assert materialize(env).exit_code == 0
    assert lake_state(lake)[0] == schema_small


def test_republish_with_other_columns_recreates_the_table(project):
    folder, lake, env = project
    first = json.loads(materialize(env, "--json").stdout)
    schema_before, _ = lake_state(lake)
    folder.write(
        base_definition(
            version="2.0.0",
            data_type="integer",
            changelog="Whole prices",
            transformation={
                "code": "SELECT symbol, date, CAST(close AS INTEGER) AS close_price FROM raw.prices"
            },
        )
    )
    folder.write(
        child(
            transformation={
                "code": "SELECT symbol, date, close_price * 2.0"
                " AS double_price FROM features.close_price"
            }
        )
    )
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    conn = open_test_lake(lake, read_only=True)
    try:
        for table in ("features.close_price", "_latest.close_price"):
            kind = conn.execute(f"SELECT typeof(close_price) FROM {table} LIMIT 1").fetchone()
            assert kind == ("INTEGER",), table
    finally:
        conn.close()
    assert table_rows(lake, "features.close_price")[0] == ("AAA", _date(1), 10)
    # Built straight into the lake by CREATE TABLE AS (a schema change); the old version,
    # other columns and all, stays readable by time travel.
    assert lake_state(lake)[0] > schema_before
    old = first[0]["snapshot_id"]
    conn = open_test_lake(lake, read_only=True)
    try:
        assert conn.execute(
            f"SELECT DISTINCT typeof(close_price) FROM features.close_price AT (VERSION => {old})"
        ).fetchall() == [("DOUBLE",)]
    finally:
        conn.close()


def test_rejection_after_a_direct_build_leaves_live_and_latest_untouched(project):
    """The direct build wrote into the live table inside its transaction; the failed check
    rolls it back, and the staging way fills _rejected in the only new commit."""
    _, lake, env = project
    assert materialize(env).exit_code == 0
    before = {t: table_digest(lake, t) for t in ("features.close_price", "_latest.close_price")}
    seed_prices(lake, rows=((1, 10.0), (2, -5.0), (3, 12.0), (4, 13.0)))
    _, seeded = lake_state(lake)
    result = materialize(env, "--json")
    assert result.exit_code == 1
    build = json.loads(result.stdout)[0]
    assert build["status"] == "rejected" and build["rows"] == 8
    assert {t: table_digest(lake, t) for t in before} == before
    assert len(table_rows(lake, "_rejected.close_price")) == 8
    # Nothing of the rolled-back direct build was committed: the one commit that changed a
    # table since the new raw data is the rejection's.
    conn = open_test_lake(lake, read_only=True)
    try:
        commits = conn.execute(
            "SELECT snapshot_id, commit_message FROM featurestore.snapshots()"
            " WHERE snapshot_id > ? AND NOT map_contains(changes, 'schemas_created')"
            " ORDER BY snapshot_id",
            [seeded],
        ).fetchall()
    finally:
        conn.close()
    assert commits == [(build["snapshot_id"], "rejected close_price 1.0.0")]


RUNTIME_ERROR_RULE = {
    "rule_type": "custom_sql",
    "parameters": {"sql": "SELECT * FROM {{ table }} WHERE CAST(symbol AS INTEGER) > 0"},
}


@pytest.mark.parametrize("blocking", [False, True])
def test_custom_sql_failing_at_run_time_gives_the_staging_result(project, blocking):
    """A check statement that fails aborts the direct build's transaction: the feature is
    redone the staging way, and reports exactly what that way reports."""
    folder, lake, env = project
    assert materialize(env).exit_code == 0
    before = table_digest(lake, "features.close_price")
    folder.write(
        base_definition(validation_rules=[{**RUNTIME_ERROR_RULE, "is_blocking": blocking}])
    )
    seed_prices(lake, rows=((1, 20.0), (2, 21.0)))
    result = materialize(env, "--json")
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    build = builds["close_price"]
    failed = [c for c in build["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["custom_sql"]
    assert "Could not convert string 'AAA'" in failed[0]["metadata"]["error"]
    assert build["rows"] == 4
    if blocking:
        assert result.exit_code == 1
        assert build["status"] == "rejected" and builds["double_price"]["status"] == "skipped"
        assert table_digest(lake, "features.close_price") == before
        assert len(table_rows(lake, "_rejected.close_price")) == 4
    else:
        assert result.exit_code == 0, result.output
        assert build["status"] == "published" and builds["double_price"]["status"] == "published"
        assert table_rows(lake, "_latest.close_price") == [
            ("AAA", _date(2), 21.0),
            ("BBB", _date(2), 21.0),
        ]
        assert max(r[2] for r in table_rows(lake, "features.double_price")) == 42.0
    # What `check` (always the staging way, nothing written) reports for the same rule.
    checked = runner.invoke(app, ["check", "--json"], env=env)
    checked_builds = json.loads(checked.stdout)["features"]
    staged = next(b for b in checked_builds if b["feature_name"] == "close_price")
    assert [(c["name"], c["passed"]) for c in staged["checks"]] == [
        (c["name"], c["passed"]) for c in build["checks"]
    ]
    assert staged["checks"][-1]["metadata"]["error"] == failed[0]["metadata"]["error"]


def test_a_long_build_swaps_its_connection_to_bound_duckdb_catalog_memory(project, monkeypatch):
    # A DuckDB connection keeps the lake catalog of every schema version it saw; past the
    # budget the build goes on with a fresh locked connection (here: before every feature
    # once the connection cached a schema version of its own).
    import featurestore_dagster.build.publish as publish
    import featurestore_dagster.storage.lake as lake_module

    _, lake, env = project
    opened = []
    real_open = lake_module.open_build_connection

    def counting_open(settings):
        opened.append(real_open(settings))
        return opened[-1]

    monkeypatch.setattr(lake_module, "open_build_connection", counting_open)
    monkeypatch.setattr(publish, "CATALOG_CACHE_BUDGET", 0)
    result = materialize(env, "--json")
    assert result.exit_code == 0, result.output
    assert {b["status"] for b in json.loads(result.stdout)} == {"published"}
    assert len(opened) >= 2  # the step's own, then one before its second feature
    for conn in opened:  # every connection was closed at the end of the step
        with pytest.raises(Exception, match="closed"):
            conn.execute("SELECT 1")
    assert table_rows(lake, "features.double_price")[0] == ("AAA", _date(1), 20.0)
    assert materialize(env, "--json").exit_code == 0  # and a rebuild (DML) after it
