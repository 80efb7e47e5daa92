"""Benchmark: loading the code location for N synthetic features versus hand-written specs.

For 1,000 and 10,000 features (3 validation rules each, 1-2 upstreams each), it times, in
fresh processes and interleaved rounds:

- ours: ``code_location()`` (what ``workspace.yaml`` and the Component load): YAML files ->
  FeatureGraph (pydantic + sqlglot reference checks) -> code versions -> Definitions ->
  repository snapshot (what a Dagster code server serializes for the UI), with nothing
  registered yet (a fresh clone);
- floor: the same graph written directly as Dagster AssetSpecs + AssetCheckSpecs in one
  multi-asset -> Definitions -> the same snapshot.

The ratio is of whole processes (interpreter start, imports, load, snapshot, exit: wall time);
the CPU time of each process and the load alone (after imports) are reported beside it.

    uv run python benchmarks/compile.py                 # 1,000 and 10,000 features
    uv run python benchmarks/compile.py --features 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def synthetic_graph(count: int, seed: int = 7) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    graph = []
    for index in range(count):
        name = f"feat_{index:05d}"
        if index < 10:
            parents = []
        else:
            parents = sorted(
                {f"feat_{rng.randrange(index):05d}" for _ in range(rng.choice((1, 2)))}
            )
        graph.append((name, parents))
    return graph


def sql_for(name: str, parents: list[str]) -> str:
    if not parents:
        return f"SELECT symbol, date, close AS {name} FROM raw.prices"
    first = parents[0]
    expression = " + ".join(f"t{i}.{p}" for i, p in enumerate(parents))
    joins = " ".join(
        f"JOIN features.{p} t{i} USING (symbol, date)" for i, p in enumerate(parents) if i
    )
    return f"SELECT t0.symbol, t0.date, {expression} AS {name} FROM features.{first} t0 {joins}"


RULES = [
    {"rule_type": "range", "parameters": {"min": -1000, "max": 1000}, "is_blocking": True},
    {"rule_type": "null_check", "parameters": {"max_null_fraction": 0.01}},
    {"rule_type": "outlier", "parameters": {"method": "zscore"}},
]


def write_definitions(folder: Path, graph) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, parents in graph:
        payload = {
            "feature_name": name,
            "version": "1.0.0",
            "feature_type": "derived" if parents else "raw",
            "data_type": "float",
            "status": "active",
            "description": f"Synthetic feature {name}",
            "owner": "bench-team",
            "tags": ["synthetic"],
            "entity_columns": ["symbol"],
            "timestamp_column": "date",
            "upstream_features": parents,
            "sources": [] if parents else ["raw.prices"],
            "transformation": {"code": sql_for(name, parents)},
            "validation_rules": RULES,
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(payload, sort_keys=False))


SNAPSHOT = """
def snapshot(defs):
    from dagster._core.remote_representation.external_data import RepositorySnap
    repo = defs.get_repository_def()
    return RepositorySnap.from_def(repo)
"""

OURS = (
    """
import time, sys
from pathlib import Path
import dagster
sys.path.insert(0, {root!r})
from featurestore_dagster.config import Settings
from featurestore_dagster.orchestration.definitions import code_location
"""
    + SNAPSHOT
    + """
start = time.perf_counter()
settings = Settings.load(definitions_path={folder!r}, lake_data={lake!r}, registry_url={registry!r})
defs = code_location(settings)
snapshot(defs)
print(time.perf_counter() - start)
"""
)

FLOOR = (
    """
import time, json
import dagster as dg
"""
    + SNAPSHOT
    + """
graph, sqls, rules = json.load(open({graph_file!r}))
start = time.perf_counter()
specs, checks = [], []
for name, parents in graph:
    key = dg.AssetKey(["features", name])
    deps = [dg.AssetKey(["features", p]) for p in parents] or [dg.AssetKey(["raw", "prices"])]
    # The same information the feature store puts on each asset, written by hand.
    metadata = {{
        "feature_name": name, "version": "1.0.0", "status": "active", "data_type": "float",
        "entity_columns": "symbol", "timestamp_column": "date",
        "dagster/table_name": f"features.{{name}}",
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn("symbol", "VARCHAR"), dg.TableColumn("date", "DATE"),
            dg.TableColumn(name, "DOUBLE")]),
        "transformation_type": "sql",
        "transformation": dg.MetadataValue.md(f"```sql\\n{{sqls[name]}}\\n```"),
        "validation_rules": dg.MetadataValue.json(rules),
    }}
    specs.append(dg.AssetSpec(key, deps=deps, group_name="derived" if parents else "raw",
        description=f"Synthetic feature {{name}}", code_version="1.0.0", owners=["team:bench-team"],
        tags={{"synthetic": "", "status": "active"}}, kinds={{"duckdb", "sql"}}, skippable=True,
        metadata=metadata))
    for check in ("schema", "unique_key", "range", "null_check", "outlier"):
        checks.append(dg.AssetCheckSpec(check, asset=key, blocking=check in ("schema", "unique_key", "range")))

@dg.multi_asset(specs=specs, check_specs=checks, can_subset=True, name="build_features")
def build_features(context):
    pass

defs = dg.Definitions(assets=[build_features, dg.AssetSpec(["raw", "prices"])],
                      executor=dg.in_process_executor)
snapshot(defs)
print(time.perf_counter() - start)
"""
)


def run(script: str) -> dict[str, float]:
    """One fresh process: its wall time, its CPU time and the load time it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": cpu, "load": float(result.stdout.strip().splitlines()[-1])}


def bench(count: int, rounds: int, workdir: Path) -> dict:
    graph = synthetic_graph(count)
    folder = workdir / f"defs_{count}"
    write_definitions(folder, graph)
    graph_file = workdir / f"graph_{count}.json"
    sqls = {name: sql_for(name, parents) for name, parents in graph}
    graph_file.write_text(json.dumps([graph, sqls, RULES]))
    state = workdir / f"state_{count}"  # the lake data's parent folder holds the cache
    ours_script = OURS.format(
        root=str(ROOT),
        folder=str(folder),
        lake=str(state / "lake"),
        registry=f"sqlite:///{state / 'registry.db'}",  # not created: nothing registered
    )
    cold = run(ours_script)  # first load: empty SQL-reference cache
    print(f"  features={count:,} cold (no cache): featurestore {cold['wall']:.2f}s", flush=True)
    floor_script = FLOOR.format(graph_file=str(graph_file))
    timings: dict[str, list[dict[str, float]]] = {"ours": [], "floor": []}
    ratios = []
    for index in range(rounds):
        order = ["ours", "floor"]
        random.shuffle(order)
        timing = {side: run(ours_script if side == "ours" else floor_script) for side in order}
        for side in order:
            timings[side].append(timing[side])
        ratios.append(timing["ours"]["wall"] / timing["floor"]["wall"])
        print(
            f"  features={count:,} round {index + 1}: featurestore {timing['ours']['wall']:.2f}s"
            f" (cpu {timing['ours']['cpu']:.2f}s, load {timing['ours']['load']:.2f}s),"
            f" hand-written specs {timing['floor']['wall']:.2f}s"
            f" (cpu {timing['floor']['cpu']:.2f}s, load {timing['floor']['load']:.2f}s),"
            f" ratio {ratios[-1]:.3f}",
            flush=True,
        )

    def median(side: str, what: str) -> float:
        return round(statistics.median(t[what] for t in timings[side]), 3)

    def ratio_of(what: str) -> float:
        return round(
            statistics.median(
                o[what] / f[what] for o, f in zip(timings["ours"], timings["floor"], strict=True)
            ),
            3,
        )

    return {
        "features": count,
        "rounds": rounds,
        "featurestore_cold_s": round(cold["wall"], 3),
        "featurestore_median_s": median("ours", "wall"),
        "hand_written_median_s": median("floor", "wall"),
        "median_ratio": round(statistics.median(ratios), 3),
        "min_ratio": round(min(ratios), 3),
        "max_ratio": round(max(ratios), 3),
        "cpu_ratio": ratio_of("cpu"),
        "load_only_ratio": ratio_of("load"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/compile.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-compile-") as tmp:
        results = [bench(count, args.rounds, Path(tmp)) for count in args.features]
    print(
        "\n| features | featurestore cold (s) | featurestore (median s) | hand-written specs"
        " (median s) | median ratio | ratio range | CPU ratio | load-only ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['features']:,} | {r['featurestore_cold_s']} | {r['featurestore_median_s']}"
            f" | {r['hand_written_median_s']} | {r['median_ratio']}"
            f" | {r['min_ratio']}-{r['max_ratio']} | {r['cpu_ratio']} | {r['load_only_ratio']} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
