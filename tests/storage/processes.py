"""Helpers for tests that run the real ``featurestore`` CLI as separate processes on a lake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DefinitionsFolder, base_definition, open_test_lake

FEATURESTORE = str(Path(sys.executable).parent / "featurestore")


def start(env: dict[str, str], cwd: Path, *args: str, **kwargs) -> subprocess.Popen:
    """``featurestore ARGS`` in a process group of its own (so a kill takes all of it)."""
    return subprocess.Popen(
        [FEATURESTORE, *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def run(env: dict[str, str], cwd: Path, *args: str, timeout: float = 300):
    process = start(env, cwd, *args)
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def seed_prices(env: dict[str, str], *, symbols: int, days: int, scale: float = 1.0) -> None:
    """``raw.prices`` with ``symbols`` x ``days`` rows; ``scale`` changes every close."""
    conn = open_test_lake(env)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        conn.execute(
            "CREATE OR REPLACE TABLE raw.prices AS SELECT 'S' || lpad(s::VARCHAR, 4, '0')"
            " AS symbol, DATE '2020-01-01' + d::INTEGER AS date,"
            f" round((10 + s + (d % 17) * 0.25) * {scale}, 4) AS close"
            f" FROM range({symbols}) r(s), range({days}) q(d)"
        )
    finally:
        conn.close()


def derived(name: str, expression: str, upstream: str = "close_price", **overrides):
    """A feature over one upstream: ``expression`` computes its value from ``value``."""
    sql = (
        f"SELECT symbol, date, {expression} AS {name} FROM"
        f" (SELECT symbol, date, {upstream} AS value FROM features.{upstream})"
    )
    return base_definition(
        feature_name=name,
        feature_type="derived",
        sources=[],
        upstream_features=[upstream],
        transformation={"transformation_type": "sql", "code": sql},
        validation_rules=[],
        **overrides,
    )


def write_features(folder: DefinitionsFolder, count: int) -> list[str]:
    """close_price and ``count - 1`` features over it (a window, arithmetic, a chain)."""
    folder.write(base_definition(validation_rules=[]))
    names = ["close_price"]
    for index in range(1, count):
        if index % 3 == 0:
            payload = derived(
                f"f_{index:02d}",
                f"avg(value) OVER (PARTITION BY symbol ORDER BY date ROWS {index} PRECEDING)",
            )
        elif index % 3 == 1:
            payload = derived(f"f_{index:02d}", f"value * {index} + 1")
        else:
            payload = derived(f"f_{index:02d}", "value - 1", upstream=f"f_{index - 1:02d}")
        folder.write(payload)
        names.append(payload["feature_name"])
    return names


def digest(conn, table: str) -> tuple | None:
    """Row count and an order-free hash of every row, None when the table does not exist."""
    schema, name = table.split(".")
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'featurestore'"
        " AND schema_name = ? AND table_name = ?",
        [schema, name],
    ).fetchone()[0]
    if not exists:
        return None
    return conn.execute(
        f'SELECT count(*), sum(hash(t)::HUGEINT) FROM "{schema}"."{name}" t'
    ).fetchone()


def lake_tables(conn) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'featurestore'"
        " ORDER BY 1, 2"
    ).fetchall()
