"""``featurestore sql`` with no query: DuckDB's own shell on the lake, through the real CLI
(a ``featurestore`` process reading SQL on stdin), on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from featurestore_dagster.storage.shell import duckdb_executable, shell_init_sql
from tests.conftest import lake_settings, open_test_lake
from tests.storage.test_snapshots import built  # noqa: F401 - the fixture

FEATURESTORE = str(Path(sys.executable).parent / "featurestore")


def shell(env: dict[str, str], cwd: Path, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FEATURESTORE, "sql"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_the_duckdb_shell_of_this_version_is_found():
    executable = duckdb_executable()
    assert executable is not None
    version = subprocess.run([executable, "-version"], capture_output=True, text=True).stdout
    assert version.startswith(f"v{duckdb.__version__} ")


def test_shell_reads_the_lake_from_stdin(built, tmp_path):  # noqa: F811
    env, _, second = built
    stdin = (
        ".mode csv\n"
        "SELECT symbol, max(close_price) AS top FROM features.close_price GROUP BY 1 ORDER BY 1;\n"
        "SELECT count(*) AS latest FROM _latest.close_price;\n"
        "SELECT current_database() AS db,"
        " current_setting('autoload_known_extensions') AS autoload;\n"
        "SELECT max(snapshot_id) AS last FROM featurestore.snapshots();\n"
    )
    done = shell(env, tmp_path, stdin)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "symbol,top",
        "AAA,120",
        "BBB,120",
        "latest",
        "2",
        "db,autoload",
        "featurestore,false",
        "last",
        str(second),
    ]
    banner = done.stderr.splitlines()[0]
    assert "DuckDB shell on the lake" in banner and "read-only" in banner
    assert env["FEATURESTORE_LAKE_CATALOG"] in banner


def test_shell_refuses_writes(built, tmp_path):  # noqa: F811
    env, _, _ = built
    done = shell(
        env,
        tmp_path,
        "CREATE TABLE features.intruder AS SELECT 1 AS a;\n"
        "DROP TABLE features.close_price;\n"
        "CREATE TABLE scratch (a INTEGER);\n",
    )
    assert done.returncode != 0
    assert done.stderr.count("read-only mode") == 3, done.stderr
    conn = open_test_lake(env, read_only=True)
    try:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'featurestore'"
            ).fetchall()
        }
        assert conn.execute("SELECT count(*) FROM features.close_price").fetchone() == (6,)
    finally:
        conn.close()
    assert "intruder" not in tables and "scratch" not in tables and "close_price" in tables


def test_shell_attaches_configured_files_read_only(built, tmp_path):  # noqa: F811
    env, _, _ = built
    with duckdb.connect(str(tmp_path / "market.duckdb")) as conn:
        conn.execute("CREATE TABLE quotes AS SELECT 'AAA' AS symbol, 5.0 AS close")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.featurestore]\nattach = {market = "market.duckdb"}\n'
    )
    done = shell(
        env,
        tmp_path,
        ".mode csv\nSELECT symbol, close FROM market.quotes;\n"
        "INSERT INTO market.quotes VALUES ('BBB', 1.0);\n",
    )
    assert done.stdout.splitlines() == ["symbol,close", "AAA,5.0"]
    assert "read-only" in done.stderr


def test_init_script_loads_extensions_by_path_and_attaches_read_only(built):  # noqa: F811
    env, _, _ = built
    script = shell_init_sql(lake_settings(env))
    lines = script.splitlines()
    assert lines[:2] == [
        "SET autoinstall_known_extensions = false;",
        "SET autoload_known_extensions = false;",
    ]
    assert sum(line.startswith("LOAD '/") for line in lines) == 2
    assert any("READ_ONLY" in line and line.startswith("ATTACH 'ducklake:") for line in lines)
    assert f"DATA_PATH '{env['FEATURESTORE_LAKE_DATA']}/'" in script


def test_shell_on_an_unreachable_catalog_exits_2(tmp_path, store_env):
    env = {**store_env, "FEATURESTORE_LAKE_CATALOG": "postgresql://nobody@127.0.0.1:1/none"}
    (tmp_path / "feature_definitions").mkdir(exist_ok=True)
    done = shell(env, tmp_path, "SELECT 1;\n")
    assert done.returncode == 2
    assert "cannot reach the lake catalog" in done.stderr
