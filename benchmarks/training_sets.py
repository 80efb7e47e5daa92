"""Training-set and latest-value benchmark, each against a floor measured in the same run.

    uv run python benchmarks/training_sets.py                   # 1,000,000 x 10 (2,000 x 500)
    uv run python benchmarks/training_sets.py --spine-rows 200000 --repeat 5

What it measures (targets from the training-sets issue):

- training set: ``FeatureStore.get_training_set`` of a 1,000,000-row spine against ten
  one-feature tables of 2,000 symbols x 500 days (1,000,000 rows each) in the lake, result
  fetched as Arrow, against the floor: the same ten chained ``ASOF LEFT JOIN``s written by hand
  in raw DuckDB on a lake connection of the same process (spine loaded into a temp table,
  result fetched as Arrow). Runs alternate; medians are compared (target <= 1.2x). Both with
  and without a 30-day TTL (the hand-written query then filters with ``CASE WHEN``).
- peak RSS of a fresh process that builds the 1M x 10 training set (target < 2 GB);
- latest values: ``get_online_features`` for 1,000 entities x 10 features, warm, p50 and p99
  over many calls (targets 10 ms and 25 ms), against the floor: one hand-written query of ten
  LEFT JOINs over in-memory copies of the latest tables.

Prints a table, then JSON (also written to ``benchmarks/results/training_sets.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurestore_dagster.config import Settings  # noqa: E402
from featurestore_dagster.store import FeatureStore  # noqa: E402

START = np.datetime64("2020-01-01")


def definition(index: int) -> dict:
    name = f"bench_f{index}"
    return {
        "feature_name": name,
        "feature_type": "raw",
        "data_type": "float",
        "status": "active",
        "entity_columns": ["symbol"],
        "timestamp_column": "date",
        "sources": [f"raw.values_{index}"],
        "transformation": {"code": f"SELECT symbol, date, value AS {name} FROM raw.values_{index}"},
    }


def settings_for(root: Path) -> Settings:
    return Settings.load(
        definitions_path=root / "feature_definitions",
        registry_url=f"sqlite:///{root / 'registry.db'}",
        lake_catalog=f"sqlite:{root / 'lake.sqlite'}",
        lake_data=root / "lake",
    )


def open_lake(settings: Settings, read_only: bool):
    from featurestore_dagster.storage.lake import open_lake as lake

    return lake(settings, read_only=read_only)


def prepare(root: Path, symbols: int, days: int, features: int) -> None:
    """Definitions on disk and ten feature tables (plus latest tables) written into the lake."""
    folder = root / "feature_definitions"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(features):
        (folder / f"bench_f{index}.yaml").write_text(yaml.safe_dump(definition(index)))
    conn = open_lake(settings_for(root), read_only=False)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS features")
        conn.execute("CREATE SCHEMA IF NOT EXISTS _latest")
        for index in range(features):
            name = f"bench_f{index}"
            conn.execute(
                f"CREATE OR REPLACE TABLE features.{name} AS SELECT 'S' || lpad(s::VARCHAR, 4, '0')"
                f" AS symbol, DATE '2020-01-01' + d::INTEGER AS date, random() AS {name}"
                f" FROM range({symbols}) a(s), range({days}) b(d)"
            )
            conn.execute(
                f"CREATE OR REPLACE TABLE _latest.{name} AS SELECT * FROM features.{name}"
                f" QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1"
            )
    finally:
        conn.close()


def spine_table(rows: int, symbols: int, days: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    names = np.array([f"S{i:04d}" for i in range(symbols)])
    return pa.table(
        {
            "symbol": names[rng.integers(0, symbols, rows)],
            # A few days past the last value, so some rows are after every value.
            "date": (START + rng.integers(0, days + 10, rows)).astype("datetime64[D]"),
            "label": rng.normal(size=rows),
        }
    )


def floor_query(features: int, ttl_days: int | None) -> str:
    joins, columns = [], []
    for k in range(features):
        name = f"bench_f{k}"
        joins.append(
            f"ASOF LEFT JOIN features.{name} f{k} ON s.symbol = f{k}.symbol AND s.date >= f{k}.date"
        )
        if ttl_days is None:
            columns.append(f"f{k}.{name}")
        else:
            columns.append(f"CASE WHEN f{k}.date >= s.date - {ttl_days} THEN f{k}.{name} END")
    return f"SELECT s.*, {', '.join(columns)} FROM spine s {' '.join(joins)}"


def run_floor(conn, spine: pa.Table, features: int, ttl_days: int | None) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    conn.register("spine_arrow", spine)
    conn.execute("CREATE OR REPLACE TEMP TABLE spine AS SELECT * FROM spine_arrow")
    conn.unregister("spine_arrow")
    table = conn.execute(floor_query(features, ttl_days)).to_arrow_table()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert table.num_rows == spine.num_rows
    return seconds, cpu


def run_store(store, spine: pa.Table, features: int, ttl_days: int | None) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process: the steadier figure on a shared
    machine) of one training set, fetched as Arrow."""
    names = [f"bench_f{k}" for k in range(features)]
    started, cpu = time.perf_counter(), time.process_time()
    ts = store.get_training_set(
        spine, names, timestamp_column="date", ttl=f"{ttl_days}d" if ttl_days else None
    )
    table = ts.to_arrow()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert table.num_rows == spine.num_rows
    return seconds, cpu


def training_sets(root: Path, args) -> dict:
    spine = spine_table(args.spine_rows, args.symbols, args.days)
    store = FeatureStore(settings=settings_for(root))
    conn = open_lake(settings_for(root), read_only=True)
    results = {}
    try:
        for ttl_days in (None, 30):
            floor, ours = [], []
            run_store(store, spine, args.features, ttl_days)  # warm: imports, catalog, caches
            for _ in range(args.repeat):
                floor.append(run_floor(conn, spine, args.features, ttl_days))
                ours.append(run_store(store, spine, args.features, ttl_days))
            key = "no_ttl" if ttl_days is None else "ttl_30d"
            results[key] = {
                "floor_seconds": [round(s, 3) for s, _ in floor],
                "store_seconds": [round(s, 3) for s, _ in ours],
                "ratio": round(
                    statistics.median(s for s, _ in ours) / statistics.median(s for s, _ in floor),
                    3,
                ),
                "floor_cpu_seconds": [round(c, 3) for _, c in floor],
                "store_cpu_seconds": [round(c, 3) for _, c in ours],
                "cpu_ratio": round(
                    statistics.median(c for _, c in ours) / statistics.median(c for _, c in floor),
                    3,
                ),
            }
    finally:
        conn.close()
    return results


def high_water_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that over from the
    parent across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def peak_rss(root: Path, args) -> float:
    """Peak RSS (MB) of a fresh process building the training set once (run before this
    process grows)."""
    code = (
        "import sys; sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r});"
        "import training_sets as b; from pathlib import Path;"
        "from featurestore_dagster.store import FeatureStore;"
        "s = b.spine_table({rows}, {symbols}, {days});"
        "b.run_store(FeatureStore(settings=b.settings_for(Path({tmp!r}))), s, {features}, None);"
        "print(b.high_water_mb())"
    ).format(
        root=str(ROOT),
        bench=str(ROOT / "benchmarks"),
        rows=args.spine_rows,
        symbols=args.symbols,
        days=args.days,
        tmp=str(root),
        features=args.features,
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return float(output.strip().splitlines()[-1])


def online(root: Path, args) -> dict:
    store = FeatureStore(settings=settings_for(root))
    names = [f"bench_f{k}" for k in range(args.features)]
    rng = np.random.default_rng(3)
    picks = rng.choice(args.symbols, size=args.entities, replace=False)
    entities = [{"symbol": f"S{i:04d}"} for i in picks]
    store.get_online_features(entities, names)  # warm: latest tables cached
    ours = []
    for _ in range(args.calls):
        started = time.perf_counter()
        result = store.get_online_features(entities, names)
        ours.append((time.perf_counter() - started) * 1000)
    assert len(result) == args.entities
    # Floor: the same lookup by hand, one query over in-memory copies of the latest tables.
    import duckdb

    memory = duckdb.connect()
    conn = open_lake(settings_for(root), read_only=True)
    try:
        for name in names:
            memory.register("t", conn.execute(f"SELECT * FROM _latest.{name}").to_arrow_table())
            memory.execute(f"CREATE TABLE {name} AS SELECT * FROM t")
            memory.unregister("t")
    finally:
        conn.close()
    joins = " ".join(f"LEFT JOIN {n} ON e.symbol = {n}.symbol" for n in names)
    columns = ", ".join(f"{n}.{n}, {n}.date" for n in names)
    floor = []
    for _ in range(args.calls):
        started = time.perf_counter()
        memory.register("e", pa.Table.from_pylist(entities))
        memory.execute(f"SELECT e.symbol, {columns} FROM e {joins}").to_arrow_table()
        memory.unregister("e")
        floor.append((time.perf_counter() - started) * 1000)

    def pct(values, q):
        return round(float(np.percentile(values, q)), 2)

    return {
        "entities": args.entities,
        "features": args.features,
        "calls": args.calls,
        "p50_ms": pct(ours, 50),
        "p99_ms": pct(ours, 99),
        "floor_p50_ms": pct(floor, 50),
        "floor_p99_ms": pct(floor, 99),
        "ratio_p50": round(pct(ours, 50) / max(pct(floor, 50), 1e-9), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument(
        "--only", choices=["training-set", "online"], help="Run one part of the benchmark."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-training-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        prepare(root, args.symbols, args.days, args.features)
        setup = time.perf_counter() - started
        result = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "spine_rows": args.spine_rows,
            "feature_rows": args.symbols * args.days,
            "setup_seconds": round(setup, 1),
            "peak_rss_mb": None if args.skip_rss or args.only else peak_rss(root, args),
            "training_set": {} if args.only == "online" else training_sets(root, args),
            "online": {} if args.only == "training-set" else online(root, args),
            "bench_rss_mb": high_water_mb(),
        }
    ts = result["training_set"]
    if ts:
        print(f"training set {args.spine_rows:,} x {args.features} ({args.symbols} x {args.days})")
    for key, item in ts.items():
        print(
            f"  {key:8s} floor {statistics.median(item['floor_seconds']):7.2f}s"
            f"  store {statistics.median(item['store_seconds']):7.2f}s  ratio {item['ratio']:.3f}"
            f"  (CPU: floor {statistics.median(item['floor_cpu_seconds']):.2f}s, store"
            f" {statistics.median(item['store_cpu_seconds']):.2f}s, ratio {item['cpu_ratio']:.3f})"
        )
    if result["peak_rss_mb"]:
        print(f"  peak RSS of a fresh process: {result['peak_rss_mb']} MB")
    o = result["online"]
    if o:
        print(
            f"latest values {o['entities']} x {o['features']}: p50 {o['p50_ms']} ms, p99"
            f" {o['p99_ms']} ms (floor p50 {o['floor_p50_ms']} ms, p99 {o['floor_p99_ms']} ms)"
        )
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_sets.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
