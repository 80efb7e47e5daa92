"""Benchmark: the registry commands as a user runs them, on SQLite and PostgreSQL.

Each step is a whole ``featurestore`` process (``subprocess``), so imports, loading 1,000
definition files, fingerprints and the database round trips are all counted:

- ``plan`` of N new features (cold: no SQL-reference cache yet), ``apply`` of them (one
  transaction), ``plan`` again with nothing to do;
- ``plan`` + ``apply`` after a metadata edit of 10% of the features;
- 100 successive versions of one feature through the Python API (``create_version``: edit the
  file, register), then ``featurestore versions NAME`` listing them.

    uv run python benchmarks/registry.py                       # 1,000 features, both DBs
    uv run python benchmarks/registry.py --features 200 --databases sqlite --rounds 1

Each scenario runs ``--rounds`` times (fresh folder and database each) and the median is
reported, since a shared machine's load moves single timings a lot. ``startup`` is
``featurestore --help``: the interpreter and import cost every command pays.
    FEATURESTORE_TEST_POSTGRES_URL=postgresql+psycopg://... uv run python benchmarks/registry.py

Results: a table on stdout and ``benchmarks/results/registry.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import synthetic_graph, write_definitions  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VERSIONS = 100


def featurestore(env: dict[str, str], *args: str, expect: int = 0) -> float:
    """Run one ``featurestore`` command in a fresh process; its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "featurestore_dagster.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != expect:
        raise SystemExit(f"featurestore {' '.join(args)} -> {result.returncode}\n{result.stderr}")
    return elapsed


def postgres_database(admin_url: str):
    """A fresh database for one benchmark run: (url, drop function)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fs_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from featurestore_dagster.registry import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def edit_descriptions(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / f"{name}.yaml"
        payload = yaml.safe_load(path.read_text())
        payload["description"] += " (edited)"
        payload["version"] = "1.0.1"
        path.write_text(yaml.safe_dump(payload, sort_keys=False))


def successive_versions(folder: Path, registry_url: str, state: Path, name: str) -> float:
    """Register ``VERSIONS`` versions of one feature through the API; seconds in total."""
    from featurestore_dagster.store import FeatureStore

    store = FeatureStore(
        definitions_path=folder, registry_url=registry_url, lake_data=state / "lake"
    )
    start = time.perf_counter()
    for index in range(VERSIONS):
        store.create_version(name, description=f"revision {index}", changelog=f"rev {index}")
    return time.perf_counter() - start


def bench(database: str, count: int, workdir: Path) -> dict:
    run_dir = workdir / f"{database}_{uuid.uuid4().hex[:6]}"
    folder, state = run_dir / "feature_definitions", run_dir / "state"
    graph = synthetic_graph(count)
    write_definitions(folder, graph)
    drop = None
    if database == "sqlite":
        url = f"sqlite:///{run_dir / 'registry.db'}"
    else:
        url, drop = postgres_database(
            os.environ.get("FEATURESTORE_TEST_POSTGRES_URL", POSTGRES_URL)
        )
    env = {
        **os.environ,
        "FEATURESTORE_DEFINITIONS": str(folder),
        "FEATURESTORE_REGISTRY_URL": url,
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{state / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(state / "lake"),
        "FEATURESTORE_BOOTSTRAP": "",
    }
    try:
        result = {"database": database, "features": count}
        result["startup_s"] = featurestore(env, "--help")
        result["plan_new_s"] = featurestore(env, "plan", "--check", expect=1)
        result["apply_new_s"] = featurestore(env, "apply")
        result["plan_unchanged_s"] = featurestore(env, "plan", "--check")
        edited = [name for name, _ in graph[::10]]
        edit_descriptions(folder, edited)
        result["plan_edited_10pct_s"] = featurestore(env, "plan")
        result["apply_edited_10pct_s"] = featurestore(env, "apply")
        target = graph[-1][0]  # a leaf: nothing depends on it
        result["versions_100_api_s"] = successive_versions(folder, url, state, target)
        result["versions_100_api_per_version_ms"] = result["versions_100_api_s"] * 1000 / VERSIONS
        result["versions_list_s"] = featurestore(env, "versions", target, "--json")
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    finally:
        if drop is not None:
            drop()


def median_of(rounds: list[dict]) -> dict:
    merged = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, float):
            merged[key] = round(statistics.median(r[key] for r in rounds), 3)
    merged["rounds"] = len(rounds)
    merged["all_rounds"] = rounds
    return merged


COLUMNS = [
    ("startup_s", "startup (--help)"),
    ("plan_new_s", "plan (new)"),
    ("apply_new_s", "apply (new)"),
    ("plan_unchanged_s", "plan (no change)"),
    ("plan_edited_10pct_s", "plan (10% edited)"),
    ("apply_edited_10pct_s", "apply (10% edited)"),
    ("versions_100_api_s", f"{VERSIONS} versions (API)"),
    ("versions_list_s", "versions NAME"),
]


def print_table(results: list[dict]) -> None:
    header = f"{'step':<22}" + "".join(f"{r['database']:>12}" for r in results)
    print(header)
    print("-" * len(header))
    for key, label in COLUMNS:
        print(f"{label:<22}" + "".join(f"{r[key]:>11.2f}s" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/registry.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fs_registry_bench_") as tmp:
        for database in args.databases:
            rounds = []
            for index in range(args.rounds):
                print(f"{database}: {args.features:,} features, round {index + 1}", flush=True)
                rounds.append(bench(database, args.features, Path(tmp)))
            results.append(median_of(rounds))
    print()
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "registry",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.output.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
