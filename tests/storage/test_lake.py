"""The lake on SQLite and PostgreSQL catalogs: publishes are snapshots, check discards, latest
values, attached DuckDB files, settings and faults."""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from featurestore_dagster.storage.lake import CATALOG, current_snapshot
from tests.conftest import (
    DefinitionsFolder,
    base_definition,
    double_price_definition,
    open_test_lake,
)

runner = CliRunner()

PRICES = ((1, 10.0), (2, 11.0), (3, 12.0))


def seed(env, rows=PRICES, symbols=("AAA", "BBB")) -> None:
    conn = open_test_lake(env)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        values = ", ".join(
            f"('{s}', DATE '2024-01-01' + {day}, {close})" for day, close in rows for s in symbols
        )
        conn.execute(
            "CREATE OR REPLACE TABLE raw.prices AS SELECT * FROM (VALUES "
            + values
            + ") t(symbol, date, close)"
        )
    finally:
        conn.close()


def rows(env, query: str) -> list[tuple]:
    conn = open_test_lake(env, read_only=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def doubled(**overrides):
    rule = {"rule_type": "range", "parameters": {"max": 100}, "is_blocking": True}
    return double_price_definition(**{"validation_rules": [rule], **overrides})


@pytest.fixture
def project(lake_env, tmp_path):
    folder = DefinitionsFolder(tmp_path)
    folder.write(base_definition())
    folder.write(doubled())
    seed(lake_env)
    return folder, lake_env


def cli(env, *args):
    return runner.invoke(app, list(args), env=env)


def test_publish_is_one_snapshot_with_latest_values(project):
    _, env = project
    result = cli(env, "materialize", "--json")
    assert result.exit_code == 0, result.output
    builds = {b["feature_name"]: b for b in json.loads(result.stdout)}
    assert builds["double_price"]["snapshot_id"] > builds["close_price"]["snapshot_id"] > 0
    assert rows(env, "SELECT count(*), max(double_price) FROM features.double_price") == [(6, 24.0)]
    # One row per entity, the newest date and its value.
    latest = rows(env, "SELECT * FROM _latest.close_price ORDER BY symbol")
    assert [(s, str(d), v) for s, d, v in latest] == [
        ("AAA", "2024-01-04", 12.0),
        ("BBB", "2024-01-04", 12.0),
    ]
    # The commit carries what the publish was, for reconciliation from the lake.
    (info,) = rows(
        env,
        f"SELECT commit_extra_info FROM {CATALOG}.snapshots()"
        f" WHERE snapshot_id = {builds['close_price']['snapshot_id']}",
    )[0]
    facts = json.loads(info)
    assert facts["feature_name"] == "close_price" and facts["status"] == "published"
    assert facts["version"] == "1.0.0" and len(facts["data_fingerprint"]) == 64
    # Time travel: the first publish stays readable after a second one.
    seed(env, rows=((1, 20.0),))
    assert cli(env, "materialize").exit_code == 0
    first = builds["close_price"]["snapshot_id"]
    assert rows(env, "SELECT count(*) FROM features.close_price") == [(2,)]
    assert rows(env, f"SELECT count(*) FROM features.close_price AT (VERSION => {first})") == [(6,)]
    names = {r[0] for r in rows(env, "SELECT table_name FROM duckdb_tables()")}
    assert not any(name.startswith("__staging") for name in names)


def test_global_series_latest_table_holds_one_row(lake_env, tmp_path):
    folder = DefinitionsFolder(tmp_path)
    folder.write(
        base_definition(
            feature_name="rate",
            entity_columns=[],
            sources=[],
            transformation={
                "code": "SELECT DATE '2024-01-01' + range::INTEGER AS date, range * 1.5 AS rate"
                " FROM range(5)"
            },
        )
    )
    assert cli(lake_env, "materialize").exit_code == 0
    assert [(str(d), v) for d, v in rows(lake_env, "SELECT * FROM _latest.rate")] == [
        ("2024-01-05", 6.0)
    ]


def test_check_builds_audits_and_discards(project):
    _, env = project
    assert cli(env, "apply").exit_code == 0
    assert cli(env, "materialize").exit_code == 0
    snapshot_before = _snapshot(env)
    live_before = rows(env, "SELECT * FROM features.double_price ORDER BY ALL")
    # New raw data that passes upstream; downstream reads the staged upstream and fails its
    # range rule (a check reading the old live upstream would pass).
    seed(env, rows=((1, 60.0),))
    snapshot_seeded = _snapshot(env)
    assert snapshot_seeded > snapshot_before
    result = cli(env, "check", "--json")
    assert result.exit_code == 1, result.output
    report = {b["feature_name"]: b for b in json.loads(result.stdout)["features"]}
    assert report["close_price"]["status"] == "checked"
    assert report["double_price"]["status"] == "rejected"
    assert report["double_price"]["rejected_table"] is None
    # Nothing written to the lake: no new snapshot, live tables as they were.
    assert _snapshot(env) == snapshot_seeded
    assert rows(env, "SELECT * FROM features.double_price ORDER BY ALL") == live_before
    assert rows(env, "SELECT count(*) FROM features.close_price") == [(6,)]

    seed(env)  # good data again: the gate passes, still without publishing
    result = cli(env, "check")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.stdout
    assert rows(env, "SELECT * FROM features.double_price ORDER BY ALL") == live_before


def _snapshot(env) -> int:
    conn = open_test_lake(env, read_only=True)
    try:
        return current_snapshot(conn)
    finally:
        conn.close()


def test_attached_duckdb_file_is_a_read_only_source(lake_env, tmp_path, monkeypatch):
    market = tmp_path / "market.duckdb"
    with duckdb.connect(str(market)) as conn:
        conn.execute(
            "CREATE TABLE quotes AS SELECT 'AAA' AS symbol, DATE '2024-01-02' AS date, 5.0 AS close"
        )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.featurestore]\nattach = {market = "market.duckdb"}\n'
    )
    monkeypatch.chdir(tmp_path)
    folder = DefinitionsFolder(tmp_path)
    folder.write(
        base_definition(
            sources=["market.quotes"],
            transformation={"code": "SELECT symbol, date, close AS close_price FROM market.quotes"},
        )
    )
    result = cli(lake_env, "materialize")
    assert result.exit_code == 0, result.output
    assert rows(lake_env, "SELECT close_price FROM features.close_price") == [(5.0,)]
    conn = open_test_lake(lake_env, read_only=False)
    try:
        with pytest.raises(duckdb.Error, match="read-only|read only"):
            conn.execute("INSERT INTO market.quotes VALUES ('B', DATE '2024-01-03', 1.0)")
    finally:
        conn.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_lake_connections_draw_no_progress_bar_on_stdout(lake_env, read_only):
    # DuckDB's own progress bar goes to stdout for long queries and would corrupt the
    # CLI's --json / --csv output at realistic sizes (seen at 1M rows).
    open_test_lake(lake_env).close()  # the lake exists before a reader opens it
    conn = open_test_lake(lake_env, read_only=read_only)
    try:
        setting = conn.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    finally:
        conn.close()
    assert setting is False


def test_sqlite_catalog_readers_never_wait_for_a_writer(tmp_path, monkeypatch):
    # In SQLite's default journal mode a reader's catalog lookup waits (busy handler, up to the
    # 60 s META_BUSY_TIMEOUT) while a writer commits: readers stalled up to ~1 s a build. The
    # catalog is kept in WAL mode, where no lock a writer holds stops a reader.
    import sqlite3
    import subprocess
    import sys

    catalog = tmp_path / "lake.sqlite"
    env = {
        "FEATURESTORE_DEFINITIONS": str(tmp_path / "feature_definitions"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{catalog}",
        "FEATURESTORE_LAKE_DATA": str(tmp_path / "lake"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seed(env)
    assert sqlite3.connect(catalog).execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    writer = sqlite3.connect(catalog, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # what a committing writer holds in journal mode
    try:
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                "from tests.conftest import open_test_lake; import os;"
                " c = open_test_lake(dict(os.environ), read_only=True);"
                " print(c.execute('SELECT count(*) FROM raw.prices').fetchone()[0])",
            ],
            capture_output=True,
            text=True,
            timeout=40,  # journal mode: blocked until the 60 s busy timeout, then an error
            env={**os.environ, **env},
        )
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.split() == ["6"]


def test_a_read_only_open_works_with_no_wal_files_left(lake_env):
    # The last connection to a WAL database removes its -wal and -shm files; a read-only
    # connection must still open the lake afterwards (SQLite recreates the index).
    seed(lake_env)
    assert rows(lake_env, "SELECT count(*) FROM raw.prices") == [(6,)]
