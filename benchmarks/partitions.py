"""Benchmark: rebuilding one daily partition of a feature versus rebuilding all of it.

Generated prices for N symbols over 5 years of business days; ``close`` (daily partitions, read
from the raw table with ``{{ partition_start }}`` / ``{{ partition_end }}``) and ``sma_20`` (a
20-row moving average of it, daily partitions, ``lookback: 30d``). Each round times, in random
order, write-audit-publish of ``sma_20`` over its whole range (the full rebuild, the floor) and
over its last day (one partition: the window plus its lookback), on one build connection to a
lake (SQLite catalog) in the same process. The ratio one-day / full per round and its median
are reported.

    uv run python benchmarks/partitions.py                  # 2,000 symbols, 3 rounds
    uv run python benchmarks/partitions.py --symbols 500 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from featurestore_dagster.build.partitions import BuildWindow
from featurestore_dagster.build.publish import FeatureBuilder
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.storage.lake import lock_build_connection, open_build_connection

START, END = dt.date(2020, 1, 1), dt.date(2025, 1, 1)


def definitions() -> list[FeatureDefinition]:
    partitions = {"type": "daily", "start": START.isoformat(), "lookback": "30d"}
    common = {
        "version": "1.0.0",
        "data_type": "float",
        "status": "active",
        "entity_columns": ["symbol"],
        "timestamp_column": "date",
        "partitions": partitions,
        "validation_rules": [
            {"rule_type": "range", "parameters": {"min": 0}, "is_blocking": True},
            {"rule_type": "null_check", "parameters": {"max_null_fraction": 0.01}},
        ],
    }
    close = {
        **common,
        "feature_name": "close",
        "feature_type": "raw",
        "sources": ["raw.prices"],
        "transformation": {
            "transformation_type": "sql",
            "code": "SELECT symbol, date, close FROM raw.prices"
            " WHERE date >= {{ partition_start }} AND date < {{ partition_end }}",
        },
    }
    sma = {
        **common,
        "feature_name": "sma_20",
        "feature_type": "technical_indicator",
        "upstream_features": ["close"],
        "transformation": {
            "transformation_type": "sql",
            "code": "SELECT symbol, date, avg(close) OVER (PARTITION BY symbol ORDER BY date"
            " ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS sma_20 FROM features.close",
        },
    }
    return [FeatureDefinition.model_validate(d) for d in (close, sma)]


def bench(symbols: int, rounds: int, workdir: Path) -> dict:
    settings = Settings.load(
        definitions_path=workdir / "feature_definitions",
        registry_url=f"sqlite:///{workdir / 'registry.db'}",
        lake_catalog=f"sqlite:{workdir / 'lake.sqlite'}",
        lake_data=workdir / "lake",
    )
    conn = open_build_connection(settings)  # the connection a Dagster step builds on
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        f"""CREATE TABLE raw.prices AS
        SELECT 'S' || lpad(s::VARCHAR, 5, '0') AS symbol, d::DATE AS date,
               100 + 10 * sin(s + epoch(d) / 86400 / 30) + random() AS close
        FROM range({symbols}) t(s),
             range(DATE '{START}', DATE '{END}', INTERVAL 1 DAY) r(d)
        WHERE dayofweek(d) BETWEEN 1 AND 5"""
    )
    rows = conn.execute("SELECT count(*) FROM raw.prices").fetchone()[0]
    lock_build_connection(conn, settings, [])
    graph = FeatureGraph.from_definitions(definitions())
    builder = FeatureBuilder(conn, graph)
    full = BuildWindow(START, END)
    last = conn.execute("SELECT max(date) FROM raw.prices").fetchone()[0]
    day = BuildWindow(last, last + dt.timedelta(days=1))
    assert builder.build(graph["close"], window=full).ok
    assert builder.build(graph["sma_20"], window=full).ok  # warm-up, not counted
    timings: dict[str, list[float]] = {"full": [], "partition": []}
    for _ in range(rounds):
        order = ["full", "partition"]
        random.shuffle(order)
        for kind in order:
            window = full if kind == "full" else day
            started = time.perf_counter()
            build = builder.build(graph["sma_20"], window=window)
            timings[kind].append(time.perf_counter() - started)
            assert build.ok, build.error
    conn.close()
    ratios = [p / f for p, f in zip(timings["partition"], timings["full"], strict=True)]
    return {
        "symbols": symbols,
        "rows": rows,
        "rounds": rounds,
        "full_seconds": [round(t, 3) for t in timings["full"]],
        "partition_seconds": [round(t, 3) for t in timings["partition"]],
        "median_ratio": round(statistics.median(ratios), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(bench(args.symbols, args.rounds, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
