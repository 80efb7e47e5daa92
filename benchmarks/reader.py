"""Benchmark: a reader's query latency while a build runs, against the same reader alone.

A reader process (a notebook, a server) holds one read-only lake connection and runs, over and
over, a typical feature query (one symbol's last 250 rows of a feature) and a `_latest` lookup
(one symbol's newest value), each timed. The build is `featurestore materialize` of the
20-feature DAG of `benchmarks/materialize.py` over generated daily prices, in its own process.
Each round measures the reader with no build running (the floor) and during a build, in random
order; the report gives p50/p99 of both query kinds and the ratios loaded/floor.

    uv run python benchmarks/reader.py                     # 1M rows, 3 rounds
    uv run python benchmarks/reader.py --rows 200000 --rounds 1 --floor-seconds 5
    uv run python benchmarks/reader.py --catalog postgresql://postgres@127.0.0.1:5432/lake
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from materialize import ROOT, generate_prices, write_definitions  # noqa: E402

READER_SCRIPT = """
import json, random, sys, time
from pathlib import Path
from featurestore_dagster.config import Settings
from featurestore_dagster.storage.lake import open_lake

stop, seconds = Path(sys.argv[1]), float(sys.argv[2])
conn = open_lake(Settings.load(), read_only=True)
symbols = [r[0] for r in conn.execute("SELECT DISTINCT symbol FROM features.px_close").fetchall()]
rng = random.Random(7)
timings = {"feature": [], "latest": []}
Path(sys.argv[3]).touch()  # ready
end = time.monotonic() + seconds
while time.monotonic() < end and not stop.exists():
    symbol = rng.choice(symbols)
    start = time.perf_counter()
    conn.execute(
        "SELECT date, px_close FROM features.px_close WHERE symbol = ?"
        " ORDER BY date DESC LIMIT 250", [symbol]
    ).fetchall()
    timings["feature"].append(time.perf_counter() - start)
    start = time.perf_counter()
    conn.execute("SELECT * FROM _latest.px_return WHERE symbol = ?", [symbol]).fetchall()
    timings["latest"].append(time.perf_counter() - start)
conn.close()
print(json.dumps(timings))
"""


def load_prices(env: dict[str, str], workdir: Path, rows: int) -> None:
    """Generate the prices into a DuckDB file, then copy them into the lake as raw.prices."""
    source = workdir / "prices.duckdb"
    conn = duckdb.connect(str(source))
    try:
        generate_prices(conn, rows)
    finally:
        conn.close()
    script = (
        "from featurestore_dagster.config import Settings\n"
        "from featurestore_dagster.storage.lake import open_lake\n"
        "conn = open_lake(Settings.load())\n"
        f"conn.execute(\"ATTACH '{source}' AS src (READ_ONLY)\")\n"
        "conn.execute('CREATE SCHEMA IF NOT EXISTS raw')\n"
        "conn.execute('CREATE OR REPLACE TABLE raw.prices AS SELECT * FROM src.raw.prices')\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, cwd=workdir, check=True)


def build(env: dict[str, str], workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "featurestore_dagster.cli", "materialize", "--json"],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read(env: dict[str, str], workdir: Path, seconds: float, during=None) -> dict[str, list]:
    """Run the reader for ``seconds`` (or, with ``during``, while that build runs)."""
    stop, ready = workdir / "stop", workdir / "ready"
    stop.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            READER_SCRIPT,
            str(stop),
            str(seconds if during is None else 1e6),
            str(ready),
        ],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        text=True,
    )
    while not ready.exists() and reader.poll() is None:
        time.sleep(0.01)
    if during is not None:
        process = during()
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"featurestore materialize failed:\n{stderr[-3000:]}")
        stop.touch()
    stdout, _ = reader.communicate()
    if reader.returncode != 0:
        raise SystemExit("the reader failed")
    return json.loads(stdout)


def quantiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floor-seconds", type=float, default=15.0)
    parser.add_argument("--catalog", help="lake catalog (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-reader-") as folder:
        workdir = Path(folder)
        write_definitions(workdir / "feature_definitions")
        env = {
            **os.environ,
            "FEATURESTORE_DEFINITIONS": str(workdir / "feature_definitions"),
            "FEATURESTORE_LAKE_CATALOG": args.catalog or f"sqlite:{workdir / 'lake.sqlite'}",
            "FEATURESTORE_LAKE_DATA": str(workdir / "lake"),
            "FEATURESTORE_REGISTRY_URL": f"sqlite:///{workdir / 'registry.db'}",
            "FEATURESTORE_BOOTSTRAP": "",
            "PYTHONPATH": str(ROOT),
        }
        load_prices(env, workdir, args.rows)
        first = build(env, workdir)
        if first.wait() != 0:
            raise SystemExit(f"the first build failed:\n{first.stderr.read()[-3000:]}")
        samples: dict[str, dict[str, list]] = {"floor": {}, "build": {}}
        for _ in range(args.rounds):
            for side in random.sample(["floor", "build"], 2):
                seconds = args.floor_seconds
                during = (lambda: build(env, workdir)) if side == "build" else None
                timings = read(env, workdir, seconds, during)
                for kind, values in timings.items():
                    samples[side].setdefault(kind, []).extend(values)
        print(f"{args.rows:,} rows, 20 features, {args.rounds} round(s)")
        print(
            f"{'query':<10}{'floor p50':>12}{'floor p99':>12}{'build p50':>12}{'build p99':>12}"
            f"{'p50 ratio':>11}{'p99 ratio':>11}{'queries':>9}"
        )
        report = {}
        for kind in ("feature", "latest"):
            f50, f99 = quantiles(samples["floor"][kind])
            b50, b99 = quantiles(samples["build"][kind])
            report[kind] = {
                "floor_p50_ms": f50 * 1e3,
                "floor_p99_ms": f99 * 1e3,
                "build_p50_ms": b50 * 1e3,
                "build_p99_ms": b99 * 1e3,
                "p50_ratio": b50 / f50,
                "p99_ratio": b99 / f99,
            }
            print(
                f"{kind:<10}{f50 * 1e3:>10.2f}ms{f99 * 1e3:>10.2f}ms{b50 * 1e3:>10.2f}ms"
                f"{b99 * 1e3:>10.2f}ms{b50 / f50:>11.2f}{b99 / f99:>11.2f}"
                f"{len(samples['build'][kind]):>9}"
            )
        print(json.dumps(report))


if __name__ == "__main__":
    main()
