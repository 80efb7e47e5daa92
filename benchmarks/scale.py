"""Benchmark: build time against the number of features, beside a hand-written Dagster floor.

N trivial features, each one read of a 10,000-row raw table and four checks (the implicit
`schema` and `unique_key`, a blocking `range`, a `null_check`), built by the whole
`featurestore materialize` process on a lake (SQLite catalog, Parquet files). The floor is a
hand-written Dagster program in a process of its own: multi-assets of the same bounded size
with the same specs and checks, doing the same DuckDB work on a lake of the same kind (one
CREATE TABLE AS SELECT, its own lake transaction, and one aggregate query for the four checks
per feature) and yielding the same materializations and check results, in the same instance
kind (ephemeral, or a DAGSTER_HOME on SQLite or PostgreSQL). Both sides start from a fresh
interpreter, so imports and teardown count on both; each has its own lake holding the same
``raw.ticks``.

    uv run python benchmarks/scale.py                          # N = 250, 1000, 2000
    uv run python benchmarks/scale.py --features 250 1000 2000 10000 --instance sqlite
    uv run python benchmarks/scale.py --features 1000 --profile benchmarks/results/scale_1000
    uv run python benchmarks/scale.py --instance postgres      # 127.0.0.1:5432 database test
    uv run python benchmarks/scale.py --features 62 250 --rebuild  # then build both again
    uv run python benchmarks/scale.py --features 1000 --floor-latest  # floor writes _latest too
    uv run python benchmarks/scale.py --features 10000 --rebuild --no-floor  # ours alone

Reported per N: both times, their ratio (ours / floor), and the growth from N/4 to N when
N/4 was measured too (a linear build grows 4x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from floor_lake import lake_info, lake_settings

from featurestore_dagster.config import Settings
from featurestore_dagster.orchestration.steps import MAX_FEATURES_PER_STEP, STEP_SIZE_ENV
from featurestore_dagster.storage.lake import open_lake

ROOT = Path(__file__).resolve().parents[1]
RAW_ROWS = 10_000
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def write_definitions(folder: Path, count: int) -> None:
    """``count`` features in one file: ``f_i = value * i`` read from ``raw.ticks``."""
    features = []
    for i in range(count):
        name = f"f_{i:05d}"
        features.append(
            {
                "feature_name": name,
                "feature_type": "technical_indicator",
                "data_type": "float",
                "status": "active",
                "owner": "bench",
                "entity_columns": ["symbol"],
                "timestamp_column": "date",
                "sources": ["raw.ticks"],
                "transformation": {
                    "code": f"SELECT symbol, date, value * {i + 1} AS {name} FROM raw.ticks"
                },
                "validation_rules": [
                    {"rule_type": "range", "parameters": {"min": 0}, "is_blocking": True},
                    {"rule_type": "null_check", "parameters": {"max_null_fraction": 0.1}},
                ],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "features.yaml").write_text(yaml.safe_dump({"features": features}, sort_keys=False))


def generate_raw(settings: Settings) -> None:
    """``raw.ticks`` (100 symbols x 100 days) written into the lake."""
    conn = open_lake(settings)
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        f"""CREATE OR REPLACE TABLE raw.ticks AS
        SELECT 'S' || (i % 100)::VARCHAR AS symbol, DATE '2020-01-01' + (i // 100)::INTEGER AS date,
               (i % 97)::DOUBLE + 1 AS value
        FROM range({RAW_ROWS}) t(i)"""
    )
    conn.close()


FLOOR = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
import dagster as dg
import duckdb
from floor_lake import connect

COUNT, STEP, LAKE, PROFILE, LATEST = {count}, {step}, {lake!r}, {profile!r}, {latest!r}


def make_step(index, names):
    specs = [dg.AssetSpec(["features", n], deps=[["raw", "ticks"]], skippable=True) for n in names]
    checks = [
        dg.AssetCheckSpec(check, asset=["features", n], blocking=check != "null_check")
        for n in names
        for check in ("schema", "unique_key", "range", "null_check")
    ]
    by_key = {{s.key: n for s, n in zip(specs, names)}}

    @dg.multi_asset(name=f"build_{{index}}", specs=specs, check_specs=checks, can_subset=True)
    def build(context):
        conn = connect(LAKE)
        if LATEST:
            conn.execute("CREATE SCHEMA IF NOT EXISTS _latest")
        for key in context.selected_asset_keys:
            name = by_key[key]
            i = int(name[2:]) + 1
            if LATEST:  # the same storage work as featurestore: a latest table, one commit
                conn.execute("BEGIN TRANSACTION")
            conn.execute(
                f"CREATE OR REPLACE TABLE features.{{name}} AS"
                f" SELECT symbol, date, value * {{i}} AS {{name}} FROM raw.ticks"
            )
            if LATEST:
                conn.execute(
                    f"CREATE OR REPLACE TABLE _latest.{{name}} AS SELECT symbol, max(date) AS date,"
                    f" arg_max_null({{name}}, date) AS {{name}} FROM features.{{name}} GROUP BY symbol"
                )
                conn.execute("COMMIT")
            rows, keys, below, nulls = conn.execute(
                f"SELECT count(*), count(DISTINCT (symbol, date)), count(*) FILTER ({{name}} < 0),"
                f" count(*) FILTER ({{name}} IS NULL) FROM features.{{name}}"
            ).fetchone()
            for check, passed in (
                ("schema", True),
                ("unique_key", keys == rows),
                ("range", below == 0),
                ("null_check", nulls <= 0.1 * rows),
            ):
                yield dg.AssetCheckResult(asset_key=key, check_name=check, passed=passed)
            yield dg.MaterializeResult(asset_key=key, metadata={{"dagster/row_count": rows}})
        conn.close()

    return build


names = [f"f_{{i:05d}}" for i in range(COUNT)]
steps = [make_step(i, names[s : s + STEP]) for i, s in enumerate(range(0, COUNT, STEP))]
instance = dg.DagsterInstance.get() if "DAGSTER_HOME" in __import__("os").environ else None
quiet = {{"loggers": {{"console": {{"config": {{"log_level": "CRITICAL"}}}}}}}}  # as featurestore
run = lambda: dg.materialize(
    [*steps, dg.AssetSpec(["raw", "ticks"])], instance=instance, run_config=quiet
)
if PROFILE:
    import cProfile
    cProfile.run("result = run()", PROFILE)
else:
    result = run()
assert result.success
"""


def instance_env(kind: str, workdir: Path, label: str) -> dict[str, str]:
    """DAGSTER_HOME for the instance kind (a fresh one per side and N)."""
    if kind == "ephemeral":
        return {}
    home = workdir / f"dagster_home_{label}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if kind == "sqlite":
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    else:
        (home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            "storage:\n  postgres:\n    postgres_url: " + POSTGRES_URL + "\n"
        )
    return {"DAGSTER_HOME": str(home)}


def _clean_postgres() -> None:
    """Drop the Dagster tables of the previous side, so each side starts empty."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        names = conn.execute(
            sqlalchemy.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename IN"
                " ('runs', 'event_logs', 'asset_keys', 'asset_event_tags', 'secondary_indexes',"
                " 'run_tags', 'snapshots', 'daemon_heartbeats', 'instance_info', 'kvs',"
                " 'bulk_actions', 'backfill_tags', 'instigators', 'job_ticks', 'jobs',"
                " 'concurrency_limits', 'concurrency_slots', 'pending_steps', 'alembic_version',"
                " 'asset_check_executions', 'dynamic_partitions', 'run_ids')"
            )
        ).scalars()
        for name in list(names):
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def run_side(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one process.

    The CPU time is the steadier figure on a shared machine: other processes stretch the
    wall time of both sides but not their CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def bench(count: int, args, workdir: Path) -> dict:
    folder = workdir / f"defs_{count}"
    write_definitions(folder, count)
    ours_lake = lake_settings(workdir / f"ours_{count}", folder)
    floor_lake = lake_settings(workdir / f"floor_{count}", folder)
    generate_raw(ours_lake)
    generate_raw(floor_lake)
    floor_info = lake_info(floor_lake)
    profile = args.profile
    base = {**os.environ, "FEATURESTORE_BOOTSTRAP": ""}
    base.pop("DAGSTER_HOME", None)
    ours_env = {
        **base,
        "FEATURESTORE_DEFINITIONS": str(folder),
        "FEATURESTORE_LAKE_CATALOG": ours_lake.lake_catalog,
        "FEATURESTORE_LAKE_DATA": str(ours_lake.lake_data),
        "FEATURESTORE_REGISTRY_URL": ours_lake.registry_url,
        STEP_SIZE_ENV: str(args.step),
        **instance_env(args.instance, workdir, f"ours_{count}"),
    }
    command = [sys.executable, "-m", "featurestore_dagster.cli", "materialize", "--json"]
    if profile:
        command[1:1] = ["-m", "cProfile", "-o", f"{profile}_ours_{count}.prof"]
    if args.instance == "postgres":
        _clean_postgres()
    ours = run_side(command, ours_env)
    script = FLOOR.format(
        count=count,
        step=args.step,
        lake=floor_info,
        benchmarks=str(ROOT / "benchmarks"),
        profile=f"{profile}_floor_{count}.prof" if profile else "",
        latest=args.floor_latest,
    )
    floor_env = {**base, **instance_env(args.instance, workdir, f"floor_{count}")}
    if args.instance == "postgres":
        _clean_postgres()
    floor_command = [sys.executable, "-c", script]
    floor = None if args.no_floor else run_side(floor_command, floor_env)
    rebuild = None
    if args.rebuild:  # the nightly case: every table exists, same columns
        again = None if args.no_floor else run_side(floor_command, floor_env)
        rebuild = (run_side(command, ours_env), again)
    row = {
        "features": count,
        "instance": args.instance,
        "floor_latest": args.floor_latest,
        "featurestore_s": round(ours[0], 2),
        "dagster_floor_s": round(floor[0], 2) if floor else None,
        "ratio_to_floor": round(ours[0] / floor[0], 3) if floor else None,
        "featurestore_cpu_s": round(ours[1], 2),
        "dagster_floor_cpu_s": round(floor[1], 2) if floor else None,
        "cpu_ratio_to_floor": round(ours[1] / floor[1], 3) if floor else None,
    }
    if rebuild is not None:
        (ours_again, _), floor_again = rebuild
        row["rebuild_featurestore_s"] = round(ours_again, 2)
        row["rebuild_dagster_floor_s"] = round(floor_again[0], 2) if floor_again else None
        row["rebuild_ratio_to_floor"] = (
            round(ours_again / floor_again[0], 3) if floor_again else None
        )
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[250, 1000, 2000])
    parser.add_argument(
        "--instance", choices=["ephemeral", "sqlite", "postgres"], default="ephemeral"
    )
    parser.add_argument(
        "--step",
        type=int,
        default=MAX_FEATURES_PER_STEP,
        help="features per multi-asset, on both sides (default: featurestore's own)",
    )
    parser.add_argument("--profile", help="write cProfile files with this path prefix")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build each side a second time on its own lake (a rebuild of existing tables)",
    )
    parser.add_argument(
        "--floor-latest",
        action="store_true",
        help="the floor also writes each feature's latest-value table in the same transaction,"
        " as featurestore does (its storage work, not Dagster's)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="build featurestore's side only (sizes whose floor would take too long)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/scale.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fs-scale-") as tmp:
        for count in args.features:
            rows.append(bench(count, args, Path(tmp)))
    by_count = {r["features"]: r for r in rows}
    for r in rows:
        quarter = by_count.get(r["features"] // 4)
        if quarter:
            for key in ("featurestore_s", "dagster_floor_s", "featurestore_cpu_s"):
                if r[key] and quarter[key]:  # None: the floor was not run
                    r[f"growth_{key}"] = round(r[key] / quarter[key], 2)
    print(f"\ninstance: {args.instance} (wall seconds; CPU seconds in brackets)")
    print("| N | featurestore | Dagster floor | ratio | growth N/4 -> N | floor growth |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['features']:,} | {r['featurestore_s']} ({r['featurestore_cpu_s']})"
            f" | {r['dagster_floor_s']} ({r['dagster_floor_cpu_s']})"
            f" | {r['ratio_to_floor']} ({r['cpu_ratio_to_floor']})"
            f" | {r.get('growth_featurestore_s', '-')} ({r.get('growth_featurestore_cpu_s', '-')})"
            f" | {r.get('growth_dagster_floor_s', '-')} |"
        )
    for r in rows:
        if "rebuild_featurestore_s" in r:
            print(
                f"rebuild N={r['features']:,}: featurestore {r['rebuild_featurestore_s']} s,"
                f" floor {r['rebuild_dagster_floor_s']} s, ratio {r['rebuild_ratio_to_floor']}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    existing[args.instance] = rows
    args.output.write_text(json.dumps(existing, indent=2))


if __name__ == "__main__":
    main()
