"""Benchmark: `featurestore materialize` on the lake against three floors, side by side.

A 20-feature window-function DAG (4 levels, 3 rules each) over generated daily prices. Each
round runs every side once, in random order, each as a fresh process (imports and teardown
count on every side):

- ``file``: plain Python and DuckDB, the same SQL and the same check queries, into a DuckDB
  file (one CREATE TABLE AS per feature, then its checks);
- ``lake``: the same, into a lake of the same kind as featurestore's (SQLite catalog, Parquet
  files), one transaction per feature (CREATE TABLE AS, checks, COMMIT);
- ``dagster``: a hand-written Dagster multi-asset (``dagster.materialize``, ephemeral
  instance, console logger quiet as featurestore's) with the same asset and check specs, the
  same SQL and checks on the lake, yielding the same materializations (row count and value
  statistics) and check results;
- ``featurestore``: the whole ``featurestore materialize`` process (in-process executor);
- ``multiprocess``: ``featurestore materialize --executor multiprocess --processes 2`` with
  ``FEATURESTORE_MAX_FEATURES_PER_STEP=16``, so the DAG's two connected parts (16 and 4
  features) are two steps that build side by side.

"The same check queries" is exactly what featurestore runs: where featurestore proves a
feature's key unique from its SQL (``unique_key`` passes as ``proven`` without its scan), the
floors skip that scan too. Every side starts from the same raw table, each lake its own.
Ratios are taken per round; the medians are reported.

    uv run python benchmarks/materialize.py                # 1M and 10M rows, 3 rounds
    uv run python benchmarks/materialize.py --rows 1000000 --rounds 5
    uv run python benchmarks/materialize.py --rows 10000000 --sides file lake featurestore
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
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
sys.path.insert(0, str(ROOT))

from floor_lake import lake_info, lake_settings  # noqa: E402

from featurestore_dagster.config import Settings  # noqa: E402
from featurestore_dagster.storage.lake import open_lake  # noqa: E402

SIDES = ("file", "lake", "dagster", "featurestore", "multiprocess")
MULTIPROCESS_STEP = 16

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


def generate_prices(conn: duckdb.DuckDBPyConnection, rows: int) -> None:
    """``raw.prices``: ``rows`` // 2,520 symbols x 2,520 days of a random walk, on ``conn``."""
    days = 2520
    symbols = max(1, rows // days)
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


def load_raw_into_lake(settings: Settings, source: Path) -> None:
    """``raw.prices`` copied from the generated DuckDB file into the lake (one transaction)."""
    conn = open_lake(settings)
    try:
        conn.execute(f"ATTACH '{source}' AS generated (READ_ONLY)")
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        conn.execute("CREATE OR REPLACE TABLE raw.prices AS SELECT * FROM generated.raw.prices")
    finally:
        conn.close()


def write_plan(definitions: Path, path: Path) -> None:
    """What the floors run, resolved once here so they parse nothing: per feature in build
    order its table, rendered SQL, definition, check specs and the unique-key proof
    featurestore would use (every upstream is published earlier in the same run)."""
    from featurestore_dagster.build.checks import check_specs
    from featurestore_dagster.build.transformations import render_sql
    from featurestore_dagster.definitions.graph import FeatureGraph
    from featurestore_dagster.definitions.sql import quote_table
    from featurestore_dagster.definitions.uniqueness import unique_key_proof

    graph = FeatureGraph.load(definitions, check_python=False)
    plan = []
    for name in graph.topological_order(graph.names):
        d = graph[name]
        sql = render_sql(d)
        proof = None
        if len(d.upstream_features) == 1 and not d.sources:
            parent = graph[d.upstream_features[0]]
            proof = unique_key_proof(d, {parent.feature_name: parent}, sql)
        checks = [(s.name, s.blocking) for s in check_specs(d)]
        upstream = [graph[p].table_name for p in d.upstream_features] + list(d.table_sources)
        plan.append((quote_table(d.table_name), d.table_name, sql, d, checks, upstream, proof))
    path.write_bytes(pickle.dumps(plan))


# Plain DuckDB: one connection, the same SQL and checks; on a lake one transaction a feature.
PLAIN = """
import pickle, sys
sys.path.insert(0, {root!r})
import duckdb
from featurestore_dagster.build.checks import evaluate_checks
plan = pickle.loads(open({plan!r}, "rb").read())
LAKE = {lake!r}
if LAKE:
    sys.path.insert(0, {root!r} + "/benchmarks")
    from floor_lake import connect
    conn = connect(LAKE)
else:
    conn = duckdb.connect({db!r})
    conn.execute("CREATE SCHEMA IF NOT EXISTS features")
for quoted, _table, sql, definition, _checks, _upstream, proof in plan:
    if LAKE:
        conn.execute("BEGIN TRANSACTION")
    conn.execute(f"CREATE OR REPLACE TABLE {{quoted}} AS {{sql}}")
    outcomes, _ = evaluate_checks(conn, definition, quoted, unique_key_proof=proof)
    assert all(o.passed or not o.blocking for o in outcomes), quoted
    if LAKE:
        conn.execute("COMMIT")
conn.close()
"""

# A hand-written Dagster multi-asset doing the plain lake side's work, with featurestore's
# specs (asset keys, deps, check specs) and results (materialization metadata, check results).
DAGSTER = """
import pickle, sys
sys.path[:0] = [{root!r}, {root!r} + "/benchmarks"]
import dagster as dg
import duckdb
from featurestore_dagster.build.checks import evaluate_checks
from floor_lake import connect
plan = pickle.loads(open({plan!r}, "rb").read())
LAKE = {lake!r}

def key(table):
    return dg.AssetKey(table.split("."))

specs = [dg.AssetSpec(key(t), deps=[key(u) for u in up], skippable=True)
         for _q, t, _s, _d, _c, up, _p in plan]
checks = [dg.AssetCheckSpec(name, asset=key(t), blocking=blocking)
          for _q, t, _s, _d, cs, _u, _p in plan for name, blocking in cs]

@dg.multi_asset(name="build_features", specs=specs, check_specs=checks, can_subset=True)
def build(context):
    conn = connect(LAKE)
    for quoted, table, sql, definition, _c, _u, proof in plan:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"CREATE OR REPLACE TABLE {{quoted}} AS {{sql}}")
        outcomes, profile = evaluate_checks(conn, definition, quoted, unique_key_proof=proof)
        conn.execute("COMMIT")
        metadata = {{"dagster/row_count": profile.row_count, "version": definition.version,
                     "checks_passed": sum(o.passed for o in outcomes)}}
        for name in ("min", "max", "mean", "null_fraction"):
            if getattr(profile, name) is not None:
                metadata[name] = float(getattr(profile, name))
        yield dg.MaterializeResult(asset_key=key(table), metadata=metadata)
        for o in outcomes:
            yield dg.AssetCheckResult(
                asset_key=key(table), check_name=o.name, passed=o.passed,
                severity=dg.AssetCheckSeverity.ERROR if o.blocking else dg.AssetCheckSeverity.WARN,
                description=o.description,
                metadata={{k: v for k, v in o.metadata.items()
                           if isinstance(v, (bool, int, float, str))}},
            )
    conn.close()

quiet = {{"loggers": {{"console": {{"config": {{"log_level": "CRITICAL"}}}}}}}}
result = dg.materialize([build, dg.AssetSpec(["raw", "prices"])], run_config=quiet)
assert result.success
"""


def run(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    if "featurestore_dagster.cli" in command:
        try:
            builds = json.loads(result.stdout)
        except ValueError:
            raise SystemExit(
                f"{command[:4]}: not JSON on stdout:\n{result.stdout[:2000]}"
            ) from None
        assert all(b["status"] == "published" for b in builds), builds
    return elapsed


def bench(rows: int, rounds: int, sides: list[str], workdir: Path, warmup: bool = True) -> dict:
    definitions = workdir / "feature_definitions"
    write_definitions(definitions)
    plan = workdir / "plan.pickle"
    write_plan(definitions, plan)
    t0 = time.perf_counter()
    source = workdir / f"generated_{rows}.duckdb"
    conn = duckdb.connect(str(source))
    generate_prices(conn, rows)
    conn.close()
    commands: dict[str, tuple[list[str], dict | None]] = {}
    for side in sides:
        folder = workdir / f"{side}_{rows}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if side == "file":
            db = folder / "floor.duckdb"
            shutil.copy(source, db)
            script = PLAIN.format(root=str(ROOT), plan=str(plan), lake=None, db=str(db))
            commands[side] = ([sys.executable, "-c", script], None)
            continue
        settings = lake_settings(folder, definitions)
        load_raw_into_lake(settings, source)
        if side in ("lake", "dagster"):
            template = PLAIN if side == "lake" else DAGSTER
            script = template.format(
                root=str(ROOT), plan=str(plan), lake=lake_info(settings), db=""
            )
            commands[side] = ([sys.executable, "-c", script], None)
            continue
        env = {
            **os.environ,
            "FEATURESTORE_DEFINITIONS": str(definitions),
            "FEATURESTORE_LAKE_CATALOG": settings.lake_catalog,
            "FEATURESTORE_LAKE_DATA": str(settings.lake_data),
            "FEATURESTORE_REGISTRY_URL": settings.registry_url,
            "FEATURESTORE_BOOTSTRAP": "",
        }
        env.pop("DAGSTER_HOME", None)
        command = [sys.executable, "-m", "featurestore_dagster.cli", "materialize", "--json"]
        if side == "multiprocess":
            command += ["--executor", "multiprocess", "--processes", "2"]
            env["FEATURESTORE_MAX_FEATURES_PER_STEP"] = str(MULTIPROCESS_STEP)
        commands[side] = (command, env)
    generated = time.perf_counter() - t0
    times: dict[str, list[float]] = {side: [] for side in sides}
    first = 0 if warmup else 1
    for index in range(first, rounds + 1):  # round 0 warms caches, creates tables; not counted
        order = list(sides)
        random.shuffle(order)
        timing = {side: run(*commands[side]) for side in order}
        if index == 0:
            continue
        for side in sides:
            times[side].append(timing[side])
        print(
            f"  rows={rows:,} round {index}: "
            + ", ".join(f"{side} {timing[side]:.2f}s" for side in sides),
            flush=True,
        )
    result = {
        "rows": rows,
        "features": 20,
        "rounds": rounds,
        "setup_seconds": round(generated, 2),
        "seconds": {side: [round(s, 3) for s in times[side]] for side in sides},
        "median_s": {side: round(statistics.median(times[side]), 3) for side in sides},
        "median_ratio": {},
    }
    pairs = [
        ("featurestore", "lake"),
        ("featurestore", "dagster"),
        ("featurestore", "file"),
        ("lake", "file"),
        ("dagster", "lake"),
        ("multiprocess", "featurestore"),
    ]
    for a, b in pairs:
        if a in times and b in times:
            ratios = [x / y for x, y in zip(times[a], times[b], strict=True)]
            result["median_ratio"][f"{a}/{b}"] = round(statistics.median(ratios), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument(
        "--no-warmup", action="store_true", help="count every round (no discarded round 0)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/materialize.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
        for rows in args.rows:
            results.append(bench(rows, args.rounds, args.sides, Path(tmp), not args.no_warmup))
            print(json.dumps(results[-1]), flush=True)
    print("\n| rows | " + " | ".join(f"{s} (median s)" for s in args.sides) + " | ratios |")
    print("|---:|" + "---:|" * len(args.sides) + "---|")
    for r in results:
        ratios = ", ".join(f"{k} {v}" for k, v in r["median_ratio"].items())
        cells = " | ".join(str(r["median_s"][s]) for s in args.sides)
        print(f"| {r['rows']:,} | {cells} | {ratios} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
