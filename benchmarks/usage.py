"""Usage benchmark: ingest, statistics, history, UI metadata and lineage closure.

    uv run python benchmarks/usage.py                      # SQLite and PostgreSQL
    uv run python benchmarks/usage.py --backend sqlite --records 200000

What it measures (targets from issue 4):

- ingest: 100,000 usage records into the empty registry through ``record_usage_batch``
  (model runs of 100 features, 100 runs = 10,000 records per atomic call), records/s (target
  > 50,000/s on SQLite); two more such rounds while the table grows; 1,000 records per call;
  ``record_model_usage`` (one run of 100 features per call, ids returned); and the bulk fill
  to 1,000,000 records at 100,000 per call;
- statistics and history over 1,000,000 records (500 features; one "hot" feature is in every
  run of the fill, about 9% of all records):
  ``get_feature_statistics`` (target < 50 ms) and ``get_feature_usage_history(limit=100)``;
- ``usage_metadata`` over all records (what loading the Dagster code location costs);
- lineage closure on a synthetic 10,000-feature graph (100 layers x 100).

PostgreSQL: ``FEATURESTORE_TEST_POSTGRES_URL`` (default the local ``test`` database); the
benchmark creates a database of its own and drops it. Prints a table, then JSON (also written
to ``benchmarks/results/usage.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurestore_dagster.definitions.graph import FeatureGraph  # noqa: E402
from featurestore_dagster.definitions.models import FeatureDefinition  # noqa: E402
from featurestore_dagster.registry import Registry  # noqa: E402
from featurestore_dagster.registry.models import (  # noqa: E402
    FeatureRecord,
    FeatureVersionRecord,
    UsageRecord,
)
from featurestore_dagster.usage.api import UsageAPI, usage_metadata  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]
ENVIRONMENTS = ["dev", "staging", "production"]
FEATURES_PER_RUN = 100
INGEST_ROUNDS = 3
TARGET_STATS_MS = 50.0
TARGET_INGEST_PER_S = 50_000


class Host(UsageAPI):
    def __init__(self, graph: FeatureGraph, engine):
        self.graph = graph
        self.registry = SimpleNamespace(engine=engine)


def definition(name: str, upstream: list[str]) -> FeatureDefinition:
    reads = f"features.{upstream[0]}" if upstream else "raw.prices"
    return FeatureDefinition.model_validate(
        {
            "feature_name": name,
            "feature_type": "derived" if upstream else "raw",
            "data_type": "float",
            "status": "active",
            "entity_columns": ["symbol"],
            "upstream_features": upstream,
            "sources": [] if upstream else ["raw.prices"],
            "transformation": {"code": f"SELECT symbol, date, 1.0 AS {name} FROM {reads}"},
        }
    )


def flat_graph(count: int) -> FeatureGraph:
    # Unvalidated on purpose: parsing the SQL of every feature is not what is measured here.
    return FeatureGraph([definition(f"feature_{i:04d}", []) for i in range(count)])


def layered_graph(layers: int, width: int) -> FeatureGraph:
    """Each feature depends on two features of the layer above (a lattice, many diamonds)."""
    items = []
    for layer in range(layers):
        for index in range(width):
            upstream = (
                []
                if layer == 0
                else sorted({f"f_{layer - 1}_{index}", f"f_{layer - 1}_{(index + 1) % width}"})
            )
            items.append(definition(f"f_{layer}_{index}", upstream))
    return FeatureGraph(items)


def register(engine, names: list[str]) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(FeatureRecord.__table__),
            [
                {
                    "feature_name": name,
                    "status": "active",
                    "current_version": VERSIONS[-1],
                    "feature_type": "raw",
                    "usage_count": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for name in names
            ],
        )
        conn.execute(
            insert(FeatureVersionRecord.__table__),
            [
                {
                    "feature_name": name,
                    "version": version,
                    "major": int(version[0]),
                    "minor": int(version[2]),
                    "patch": 0,
                    "change_category": "data",
                    "snapshot": {},
                    "data_fingerprint": version,
                    "metadata_fingerprint": version,
                    "created_at": now,
                }
                for name in names
                for version in VERSIONS
            ],
        )


def model_runs(
    names: list[str], records: int, rng: random.Random, start, *, size: int, hot: str | None = None
):
    """Model runs of ``size`` features until ``records`` records; ``hot`` is in every run."""
    runs = []
    made = 0
    others = [n for n in names if n != hot]
    per_run = size
    while made < records:
        size = min(per_run, records - made)
        chosen = rng.sample(others, size - 1 if hot else size)
        if hot:
            chosen.append(hot)
        model = rng.randrange(50)
        runs.append(
            {
                "used_by_model": f"model_{model:02d}",
                "model_version": f"{model % 5}.0.0",
                "environment": ENVIRONMENTS[model % 3],
                "execution_id": uuid.uuid4().hex,
                "execution_duration_ms": rng.uniform(10, 5000),
                "usage_timestamp": start + timedelta(seconds=made),
                "features": {name: rng.random() for name in chosen},
                "correlations": {name: rng.uniform(-1, 1) for name in chosen},
                "feature_versions": {name: rng.choice(VERSIONS) for name in chosen},
            }
        )
        made += size
    return runs


def timed(function, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 3),
        "min_ms": round(samples[0], 3),
    }


def ingest(host: Host, runs: list[dict], runs_per_call: int) -> dict[str, float]:
    records = sum(len(r["features"]) for r in runs)
    start = time.perf_counter()
    for index in range(0, len(runs), runs_per_call):
        host.record_usage_batch(runs[index : index + runs_per_call])
    seconds = time.perf_counter() - start
    return {"records": records, "seconds": round(seconds, 3), "per_s": round(records / seconds)}


def ingest_model_usage(host: Host, runs: list[dict]) -> dict[str, float]:
    records = sum(len(r["features"]) for r in runs)
    start = time.perf_counter()
    for run in runs:
        host.record_model_usage(**run)
    seconds = time.perf_counter() - start
    return {"records": records, "seconds": round(seconds, 3), "per_s": round(records / seconds)}


def bench_backend(url: str, args) -> dict:
    rng = random.Random(42)
    registry = Registry(url)  # the project's registry engine (WAL etc. on SQLite)
    engine = registry.engine
    names = [f"feature_{i:04d}" for i in range(args.features)]
    register(engine, names)
    host = Host(flat_graph(args.features), engine)
    hot = names[0]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    result: dict = {"backend": engine.dialect.name}

    # 1. ingest --ingest records into the empty registry, 10,000 per atomic call (the target),
    # then twice more while the table grows (the indexes get deeper; the machine's load moves
    # single numbers, so all rounds are kept).
    rounds = []
    for _ in range(INGEST_ROUNDS):
        runs = model_runs(names, args.ingest, rng, start, size=FEATURES_PER_RUN)
        rounds.append(ingest(host, runs, runs_per_call=100))
    result["ingest_empty_10k"] = rounds[0]
    result["ingest_growing_10k"] = rounds[1:]
    runs = model_runs(names, args.ingest, rng, start, size=FEATURES_PER_RUN)
    result["ingest_batch_1k"] = ingest(host, runs, runs_per_call=10)
    per_run = model_runs(names, args.ingest // 5, rng, start, size=FEATURES_PER_RUN)
    result["ingest_model_usage"] = ingest_model_usage(host, per_run)

    # 2. fill up to --records: runs of 10 features with the hot one in each, 100,000 records
    # per atomic call (a bulk import); only the calls are timed, not making the data.
    have = (INGEST_ROUNDS + 1) * args.ingest + args.ingest // 5
    remaining, filled, seconds = args.records - have, 0, 0.0
    while remaining > 0:
        chunk = min(remaining, 100_000)
        runs = model_runs(names, chunk, rng, start, size=10, hot=hot)
        begin = time.perf_counter()
        host.record_usage_batch(runs)
        seconds += time.perf_counter() - begin
        remaining -= chunk
        filled += chunk
    result["fill_100k"] = {
        "records": filled,
        "seconds": round(seconds, 3),
        "per_s": round(filled / seconds) if seconds else None,
    }
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
        hot_rows = conn.execute(
            select(func.count()).where(UsageRecord.feature_name == hot)
        ).scalar_one()
        typical = names[len(names) // 2]
        typical_rows = conn.execute(
            select(func.count()).where(UsageRecord.feature_name == typical)
        ).scalar_one()
    # Fresh planner statistics (and PostgreSQL's visibility map, which index-only scans need),
    # as autovacuum/autoanalyze give a table that has just received a bulk load.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    with engine.connect() as conn:
        counted = conn.execute(select(func.sum(FeatureRecord.usage_count))).scalar_one()
    assert counted == total, (counted, total)
    result["records"] = total
    result["hot_feature_records"] = hot_rows
    result["typical_feature_records"] = typical_rows

    # 3. reads.
    result["statistics_typical"] = timed(lambda: host.get_feature_statistics(typical), 30)
    result["statistics_hot"] = timed(lambda: host.get_feature_statistics(hot), 10)
    result["history_100_hot"] = timed(lambda: host.get_feature_usage_history(hot, 100), 30)
    result["history_100_typical"] = timed(lambda: host.get_feature_usage_history(typical, 100), 30)
    result["usage_metadata_all"] = timed(lambda: usage_metadata(engine), 3)

    # 4. lineage on a 10,000-feature graph, with the registry lookups of the answer.
    graph = layered_graph(100, 100)
    lineage_host = Host(graph, engine)
    result["lineage_recursive_10k"] = timed(
        lambda: lineage_host.get_feature_lineage("f_50_0", recursive=True), 10
    )
    return result


def bench_graph() -> dict:
    build_start = time.perf_counter()
    graph = layered_graph(100, 100)
    built = time.perf_counter() - build_start
    return {
        "features": len(graph),
        "build_seconds": round(built, 2),
        "upstream_closure_deep": timed(lambda: graph.upstream_closure("f_99_0"), 20),
        "downstream_closure_root": timed(lambda: graph.downstream_closure("f_0_0"), 20),
        "closure_sizes": {
            "upstream_f_99_0": len(graph.upstream_closure("f_99_0")),
            "downstream_f_0_0": len(graph.downstream_closure("f_0_0")),
        },
    }


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'registry.db'}"


def postgres_database(admin_url: str):
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fs_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def row(label: str, sqlite: dict | None, postgres: dict | None, key: str, unit: str, target=""):
    def cell(data):
        if data is None:
            return "-"
        value = data
        for part in key.split("."):
            value = value[int(part)] if part.isdigit() else value[part]
        return f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"

    return (label, cell(sqlite), cell(postgres), unit, target)


def render(results: dict) -> None:
    s = results["backends"].get("sqlite")
    p = results["backends"].get("postgresql")
    g = results["graph"]
    rows = [
        row("records in the usage table", s, p, "records", "rows"),
        row("hot feature's records", s, p, "hot_feature_records", "rows"),
        row("typical feature's records", s, p, "typical_feature_records", "rows"),
        row(
            "ingest into the empty registry, 10,000/call",
            s,
            p,
            "ingest_empty_10k.per_s",
            "records/s",
            f"> {TARGET_INGEST_PER_S:,} (SQLite)",
        ),
        row(
            "ingest again (table 1x-2x --ingest), 10,000/call",
            s,
            p,
            "ingest_growing_10k.0.per_s",
            "records/s",
        ),
        row(
            "ingest again (table 2x-3x --ingest), 10,000/call",
            s,
            p,
            "ingest_growing_10k.1.per_s",
            "records/s",
        ),
        row("ingest, record_usage_batch (1,000/call)", s, p, "ingest_batch_1k.per_s", "records/s"),
        row("ingest, record_model_usage (100/call)", s, p, "ingest_model_usage.per_s", "records/s"),
        row("bulk fill to --records, 100,000/call", s, p, "fill_100k.per_s", "records/s"),
        row(
            "statistics, typical feature (median)",
            s,
            p,
            "statistics_typical.median_ms",
            "ms",
            f"< {TARGET_STATS_MS:g}",
        ),
        row("statistics, typical feature (p95)", s, p, "statistics_typical.p95_ms", "ms"),
        row("statistics, hot feature (median)", s, p, "statistics_hot.median_ms", "ms"),
        row("history limit 100, hot (median)", s, p, "history_100_hot.median_ms", "ms"),
        row("history limit 100, typical (median)", s, p, "history_100_typical.median_ms", "ms"),
        row("usage_metadata, all records (median)", s, p, "usage_metadata_all.median_ms", "ms"),
        row("lineage recursive, 10k graph (median)", s, p, "lineage_recursive_10k.median_ms", "ms"),
    ]
    rows.append(
        (
            "upstream_closure, 10k graph (median)",
            f"{g['upstream_closure_deep']['median_ms']:.3f}",
            "(no database)",
            "ms",
            "",
        )
    )
    rows.append(
        (
            "downstream_closure, 10k graph (median)",
            f"{g['downstream_closure_root']['median_ms']:.3f}",
            "(no database)",
            "ms",
            "",
        )
    )
    widths = [
        max(len(str(r[i])) for r in [("measure", "SQLite", "PostgreSQL", "unit", "target"), *rows])
        for i in range(5)
    ]
    header = ("measure", "SQLite", "PostgreSQL", "unit", "target")
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w) if i < 3 else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/usage.json")
    args = parser.parse_args()

    results = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "parameters": vars(args) | {"output": str(args.output)},
        "backends": {},
    }
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as folder:
            print(f"sqlite: {args.records:,} records ...", file=sys.stderr)
            results["backends"]["sqlite"] = bench_backend(sqlite_url(Path(folder)), args)
    if args.backend in ("postgresql", "all"):
        admin = os.environ.get("FEATURESTORE_TEST_POSTGRES_URL", POSTGRES_URL)
        print(f"postgresql: {args.records:,} records ...", file=sys.stderr)
        url, drop = postgres_database(admin)
        try:
            results["backends"]["postgresql"] = bench_backend(url, args)
        finally:
            from featurestore_dagster.registry import dispose_engines

            dispose_engines()
            drop()
    results["graph"] = bench_graph()
    render(results)
    print(json.dumps(results, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
