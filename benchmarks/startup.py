"""Benchmark: how long a ``featurestore`` command takes to start, and what bytecode costs.

Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the machines this was built on), Python never
caches compiled modules, so every start compiles Dagster, SQLAlchemy, pydantic... from source.
uv's ``compile-bytecode = true`` fixed that by compiling site-packages ahead, but ``uv run``
then recompiles all of it on every invocation and prints "Bytecode compiled N files". The
package instead lets Python cache what it imports inside the virtual environment.

Measured, each as whole processes (median of ``--rounds``), against the floor ``python -c
pass`` of the same run:

- ``cold``: ``featurestore --help`` with an empty bytecode cache (``PYTHONPYCACHEPREFIX`` set to
  a fresh folder): what the very first command on a fresh clone pays;
- ``warm``: the same command again with that cache filled by the first run;
- ``uv compile step``: ``uv sync --compile-bytecode`` on the already installed environment,
  the cost the old setting added to every ``uv run``.

    uv run python benchmarks/startup.py --rounds 5

Results: a table on stdout and ``benchmarks/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    featurestore = [sys.executable, "-m", "featurestore_dagster.cli", "--help"]

    floor, cold, warm, compile_step = [], [], [], []
    for _ in range(args.rounds):
        floor.append(timed([sys.executable, "-c", "pass"], env))
        cache = tempfile.mkdtemp(prefix="fs-pycache-")
        try:
            cached = {**env, "PYTHONPYCACHEPREFIX": cache}
            cold.append(timed(featurestore, cached))
            warm.append(timed(featurestore, cached))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        uv = shutil.which("uv")
        if uv:
            compile_step.append(
                timed([uv, "sync", "--frozen", "--inexact", "--compile-bytecode", "-q"], env)
            )

    results = {
        "floor_python_s": statistics.median(floor),
        "cold_s": statistics.median(cold),
        "warm_s": statistics.median(warm),
        "uv_compile_step_s": statistics.median(compile_step) if compile_step else None,
        "rounds": args.rounds,
    }
    base = results["floor_python_s"]
    print(f"{'measure':<42}{'seconds':>9}{'x floor':>9}")
    for label, key in (
        ("python -c pass (floor)", "floor_python_s"),
        ("featurestore --help, empty bytecode cache", "cold_s"),
        ("featurestore --help, cache filled", "warm_s"),
        ("uv sync --compile-bytecode (per uv run)", "uv_compile_step_s"),
    ):
        value = results[key]
        if value is not None:
            print(f"{label:<42}{value:>9.2f}{value / base:>9.1f}")
    print(f"cold / warm: {results['cold_s'] / results['warm_s']:.2f}x")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
