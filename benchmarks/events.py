"""Benchmark: what one Dagster event costs in each instance kind (ephemeral, SQLite, PostgreSQL).

A multi-asset of N assets with four checks each and no work at all, materialized once per
instance kind in a fresh process; the run's time divided by the number of events it stored.
The same work in an ephemeral instance (in-memory SQLite) is the floor: the difference is what
a recorded instance adds per event. CPU seconds are those of the Dagster process (PostgreSQL's
own server time is not in them); on a busy machine they are steadier than wall time.

    uv run python benchmarks/events.py                  # N = 200, all three kinds
    uv run python benchmarks/events.py --assets 500 --kinds sqlite postgres

PostgreSQL: 127.0.0.1:5432, database `test` (or --postgres-url); its Dagster tables are
dropped before the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = """
import json, sys, time
import dagster as dg

N = {assets}
specs = [dg.AssetSpec(["bench", f"a{{i}}"]) for i in range(N)]
checks = [dg.AssetCheckSpec(f"c{{j}}", asset=s.key) for s in specs for j in range(4)]


@dg.multi_asset(specs=specs, check_specs=checks)
def everything(context):
    for spec in specs:
        for j in range(4):
            yield dg.AssetCheckResult(asset_key=spec.key, check_name=f"c{{j}}", passed=True)
        yield dg.MaterializeResult(asset_key=spec.key, metadata={{"dagster/row_count": 1}})


instance = dg.DagsterInstance.get() if {recorded} else dg.DagsterInstance.ephemeral()
quiet = {{"loggers": {{"console": {{"config": {{"log_level": "CRITICAL"}}}}}}}}
start, cpu = time.perf_counter(), time.process_time()
result = dg.materialize([everything], instance=instance, run_config=quiet)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
events = len(instance.all_logs(result.run_id))
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu, "events": events}}))
"""

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def drop_dagster_tables(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        names = conn.execute(
            sqlalchemy.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename IN"
                " ('runs', 'run_tags', 'snapshots', 'daemon_heartbeats', 'bulk_actions',"
                " 'backfill_tags', 'kvs', 'instance_info', 'event_logs', 'secondary_indexes',"
                " 'asset_keys', 'asset_event_tags', 'dynamic_partitions', 'concurrency_limits',"
                " 'concurrency_slots', 'pending_steps', 'asset_check_executions', 'jobs',"
                " 'instigators', 'job_ticks', 'run_ids', 'alembic_version')"
            )
        ).scalars()
        for name in list(names):
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def run(kind: str, assets: int, workdir: Path, postgres_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    if kind != "ephemeral":
        home = workdir / kind
        home.mkdir()
        config = "telemetry:\n  enabled: false\n"
        if kind == "postgres":
            drop_dagster_tables(postgres_url)
            config += f"storage:\n  postgres:\n    postgres_url: {postgres_url}\n"
        (home / "dagster.yaml").write_text(config)
        env["DAGSTER_HOME"] = str(home)
    script = SCRIPT.format(assets=assets, recorded=kind != "ephemeral")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["kind"] = kind
    row["ms_per_event"] = round(1000 * row["seconds"] / row["events"], 2)
    row["cpu_ms_per_event"] = round(1000 * row["cpu_seconds"] / row["events"], 2)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument(
        "--kinds", nargs="+", default=["ephemeral", "sqlite", "postgres"],
        choices=["ephemeral", "sqlite", "postgres"],
    )  # fmt: skip
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results/events.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-events-") as tmp:
        rows = [run(kind, args.assets, Path(tmp), args.postgres_url) for kind in args.kinds]
    floor = next((r for r in rows if r["kind"] == "ephemeral"), None)
    print(
        "\n| instance | events | run s (CPU s of this process) | ms per event (CPU) |"
        " added per event vs ephemeral, ms (CPU) |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        added = "-"
        if floor:
            wall = 1000 * (r["seconds"] - floor["seconds"]) / r["events"]
            cpu = 1000 * (r["cpu_seconds"] - floor["cpu_seconds"]) / r["events"]
            added = f"{wall:.2f} ({cpu:.2f})"
        print(
            f"| {r['kind']} | {r['events']} | {r['seconds']:.2f} ({r['cpu_seconds']:.2f})"
            f" | {r['ms_per_event']} ({r['cpu_ms_per_event']}) | {added} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
