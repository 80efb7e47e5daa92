"""Benchmark: `featurestore materialize` versus plain DuckDB running the same SQL and checks.

A 20-feature window-function DAG (4 levels) over generated daily prices. Each round runs, in
random order, (a) the whole `featurestore materialize` process and (b) a plain Python process
that opens one DuckDB connection and runs the same CREATE TABLE ... AS SELECT statements and
the same check queries. The ratio a/b per round is reported with its median, so machine noise
hits both sides alike.

    uv run python benchmarks/materialize.py                # 1M and 10M rows, 3 rounds
    uv run python benchmarks/materialize.py --rows 1000000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]

# name -> (upstream, SQL, rules). Window functions over per-symbol series, 4 dependency levels.
W = "OVER (PARTITION BY symbol ORDER BY date ROWS BETWEEN {n} PRECEDING AND CURRENT ROW)"


def _window(name: str, upstream: str, expr: str, n: int) -> tuple[list[str], str]:
    sql = (
        f"SELECT symbol, date, {expr.format(col=upstream)} {W.format(n=n - 1)} AS {name}"
        f" FROM features.{upstream}"
    )
    return [upstream], sql


def feature_dag() -> dict[str, tuple[list[str], str, list[dict]]]:
    positive = [{"rule_type": "range", "parameters": {"min": 0}, "is_blocking": True}]
    nulls = [{"rule_type": "null_check", "parameters": {"max_null_fraction": 0.05}}]
    outliers = [{"rule_type": "outlier", "parameters": {"max_outlier_fraction": 0.05}}]
    dag: dict[str, tuple[list[str], str, list[dict]]] = {
        "px_close": (
            [],
            "SELECT symbol, date, close AS px_close FROM raw.prices",
            positive + nulls + [{"rule_type": "row_count", "parameters": {"min": 1}}],
        ),
        "px_volume": (
            [],
            "SELECT symbol, date, volume::DOUBLE AS px_volume FROM raw.prices",
            positive + nulls + outliers,
        ),
        "px_return": (
            ["px_close"],
            "SELECT symbol, date, px_close / lag(px_close) OVER (PARTITION BY symbol ORDER BY date)"
            " - 1 AS px_return FROM features.px_close",
            nulls + outliers + [{"rule_type": "range", "parameters": {"min": -1, "max": 10}}],
        ),
    }
    for n in (5, 10, 20, 50, 100):
        up, sql = _window(f"px_sma_{n}", "px_close", "avg({col})", n)
        dag[f"px_sma_{n}"] = (up, sql, positive + nulls + outliers)
    for n in (10, 20, 60):
        up, sql = _window(f"px_vol_{n}", "px_return", "stddev_samp({col})", n)
        dag[f"px_vol_{n}"] = (up, sql, positive + nulls + outliers)
    for n in (5, 20):
        up, sql = _window(f"px_vma_{n}", "px_volume", "avg({col})", n)
        dag[f"px_vma_{n}"] = (up, sql, positive + nulls + outliers)
    for n in (10, 20):
        up, sql = _window(f"px_mom_{n}", "px_return", "sum({col})", n)
        dag[f"px_mom_{n}"] = (
            up,
            sql,
            nulls + outliers + [{"rule_type": "unique", "parameters": {}}],
        )
    dag["px_sma_ratio"] = (
        ["px_sma_5", "px_sma_50"],
        "SELECT a.symbol, a.date, a.px_sma_5 / b.px_sma_50 AS px_sma_ratio"
        " FROM features.px_sma_5 a JOIN features.px_sma_50 b USING (symbol, date)",
        positive + nulls + outliers,
    )
    dag["px_vol_ratio"] = (
        ["px_vol_10", "px_vol_60"],
        "SELECT a.symbol, a.date, a.px_vol_10 / nullif(b.px_vol_60, 0) AS px_vol_ratio"
        " FROM features.px_vol_10 a JOIN features.px_vol_60 b USING (symbol, date)",
        nulls + outliers + [{"rule_type": "range", "parameters": {"min": 0}}],
    )
    dag["px_zscore_20"] = (
        ["px_close", "px_sma_20"],
        "SELECT c.symbol, c.date, (c.px_close - s.px_sma_20) / nullif(stddev_samp(c.px_close)"
        f" {W.format(n=19)}, 0) AS px_zscore_20"
        " FROM features.px_close c JOIN features.px_sma_20 s USING (symbol, date)",
        nulls + outliers + [{"rule_type": "range", "parameters": {"min": -10, "max": 10}}],
    )
    dag["px_volume_z"] = (
        ["px_volume", "px_vma_20"],
        "SELECT v.symbol, v.date, (v.px_volume - m.px_vma_20) / nullif(stddev_samp(v.px_volume)"
        f" {W.format(n=19)}, 0) AS px_volume_z"
        " FROM features.px_volume v JOIN features.px_vma_20 m USING (symbol, date)",
        nulls + outliers + [{"rule_type": "unique", "parameters": {}}],
    )
    dag["px_signal"] = (
        ["px_sma_ratio", "px_mom_20", "px_vol_ratio"],
        "SELECT r.symbol, r.date, r.px_sma_ratio * m.px_mom_20 / nullif(v.px_vol_ratio, 0)"
        " AS px_signal FROM features.px_sma_ratio r JOIN features.px_mom_20 m USING (symbol, date)"
        " JOIN features.px_vol_ratio v USING (symbol, date)",
        nulls + outliers + [{"rule_type": "row_count", "parameters": {"min": 1}}],
    )
    assert len(dag) == 20, len(dag)
    return dag


def write_definitions(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (upstream, sql, rules) in feature_dag().items():
        payload = {
            "feature_name": name,
            "feature_type": "technical_indicator",
            "data_type": "float",
            "status": "active",
            "owner": "bench",
            "entity_columns": ["symbol"],
            "timestamp_column": "date",
            "upstream_features": upstream,
            "sources": [] if upstream else ["raw.prices"],
            "transformation": {"code": sql},
            "validation_rules": rules,
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(payload, sort_keys=False))


def generate_prices(path: Path, rows: int) -> None:
    days = 2520
    symbols = max(1, rows // days)
    conn = duckdb.connect(str(path))
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE raw.prices AS
        WITH s AS (SELECT 'S' || lpad(i::VARCHAR, 5, '0') AS symbol, i FROM range({symbols}) t(i)),
             d AS (SELECT DATE '2010-01-01' + j::INTEGER AS date, j FROM range({days}) t(j))
        SELECT symbol, date,
               100 * exp(sum(((hash(i * 7919 + j) % 2001)::DOUBLE / 1000 - 1) * 0.02)
                   OVER (PARTITION BY symbol ORDER BY date)) AS close,
               (1000 + hash(i * 104729 + j) % 100000)::BIGINT AS volume
        FROM s CROSS JOIN d
        """
    )
    conn.close()


FLOOR_SCRIPT = """
import sys, time, duckdb
sys.path.insert(0, {root!r})
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.build.transformations import render_sql
from featurestore_dagster.build.checks import evaluate_checks
from featurestore_dagster.definitions.sql import quote_table
from pathlib import Path
graph = FeatureGraph.load(Path({definitions!r}), check_python=False)
plan = [(d, render_sql(d)) for d in graph.compiled]
start = time.perf_counter()
conn = duckdb.connect({db!r})
conn.execute("CREATE SCHEMA IF NOT EXISTS features")
for d, sql in plan:
    conn.execute(f"CREATE OR REPLACE TABLE {{quote_table(d.table_name)}} AS {{sql}}")
    evaluate_checks(conn, d, quote_table(d.table_name))
conn.close()
print(time.perf_counter() - start)
"""


def run_featurestore(env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "featurestore_dagster.cli", "materialize", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"featurestore materialize failed:\n{result.stderr[-3000:]}")
    builds = json.loads(result.stdout)
    assert all(b["status"] == "published" for b in builds), builds
    return elapsed


def run_floor(script: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"floor failed:\n{result.stderr[-3000:]}")
    return elapsed


def bench(rows: int, rounds: int, workdir: Path) -> dict:
    definitions = workdir / "feature_definitions"
    write_definitions(definitions)
    db = workdir / f"prices_{rows}.duckdb"
    floor_db = workdir / f"floor_{rows}.duckdb"
    t0 = time.perf_counter()
    generate_prices(db, rows)
    shutil.copy(db, floor_db)
    generated = time.perf_counter() - t0
    env = {
        **os.environ,
        "FEATURESTORE_DEFINITIONS": str(definitions),
        "FEATURESTORE_DUCKDB_PATH": str(db),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{workdir / 'registry.db'}",
        "FEATURESTORE_BOOTSTRAP": "",
    }
    script = FLOOR_SCRIPT.format(root=str(ROOT), definitions=str(definitions), db=str(floor_db))
    ours, floor, ratios = [], [], []
    for index in range(rounds + 1):  # round 0 warms caches and creates tables; not counted
        order = ["ours", "floor"]
        random.shuffle(order)
        timing = {}
        for side in order:
            timing[side] = run_featurestore(env) if side == "ours" else run_floor(script)
        if index == 0:
            continue
        ours.append(timing["ours"])
        floor.append(timing["floor"])
        ratios.append(timing["ours"] / timing["floor"])
        print(
            f"  rows={rows:,} round {index}: featurestore {timing['ours']:.2f}s,"
            f" plain DuckDB {timing['floor']:.2f}s, ratio {ratios[-1]:.3f}",
            flush=True,
        )
    return {
        "rows": rows,
        "features": 20,
        "rounds": rounds,
        "generate_seconds": round(generated, 2),
        "featurestore_median_s": round(statistics.median(ours), 3),
        "plain_duckdb_median_s": round(statistics.median(floor), 3),
        "median_ratio": round(statistics.median(ratios), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/materialize.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
        for rows in args.rows:
            results.append(bench(rows, args.rounds, Path(tmp)))
    print("\n| rows | featurestore (median s) | plain DuckDB (median s) | median ratio |")
    print("|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['featurestore_median_s']} | {r['plain_duckdb_median_s']}"
            f" | {r['median_ratio']} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
