"""Benchmark: rebuilding one daily partition of a feature versus rebuilding all of it.

Generated prices for N symbols over Y years of business days; ``close`` (daily partitions, read
from the raw table with ``{{ partition_start }}`` / ``{{ partition_end }}``) and ``sma_20`` (a
20-row moving average of it, daily partitions, ``lookback: 30d``). Each round times, in random
order, write-audit-publish of ``sma_20`` three ways, each by a fresh builder on one build
connection to a lake (SQLite catalog), as a Dagster step does:

- ``table``: the whole table, no window (``featurestore materialize sma_20``);
- ``range``: its whole partition range as one run (a backfill);
- ``day``: its last day (one partition: the window plus its lookback).

Each timed build starts with the lake's catalog loaded (after a schema change, the next
transaction reloads it). The full rebuild is the faster of ``table`` and ``range`` in the
round; the ratio day / full per round and its median are reported. Run it at two lengths of
history (``--years``) to see that the one-day run does not grow with the table.

    uv run python benchmarks/partitions.py                  # 2,000 symbols, 5 years, 5 rounds
    uv run python benchmarks/partitions.py --symbols 500 --years 10 --rounds 3
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

END = dt.date(2025, 1, 1)


def definitions(start: dt.date) -> list[FeatureDefinition]:
    partitions = {"type": "daily", "start": start.isoformat(), "lookback": "30d"}
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


def bench(symbols: int, years: int, rounds: int, workdir: Path) -> dict:
    start = END.replace(year=END.year - years)
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
             range(DATE '{start}', DATE '{END}', INTERVAL 1 DAY) r(d)
        WHERE dayofweek(d) BETWEEN 1 AND 5"""
    )
    rows = conn.execute("SELECT count(*) FROM raw.prices").fetchone()[0]
    lock_build_connection(conn, settings, [])
    graph = FeatureGraph.from_definitions(definitions(start))
    whole = BuildWindow(start, END)
    last = conn.execute("SELECT max(date) FROM raw.prices").fetchone()[0]
    windows = {"table": None, "range": whole, "day": BuildWindow(last, last + dt.timedelta(days=1))}

    def build(name: str, window: BuildWindow | None) -> float:
        # after a schema change (the previous build's DROP + CREATE) the next transaction
        # reloads the catalog: loaded here, charged to neither side
        conn.execute("SELECT count(*) FROM raw.prices").fetchall()
        started = time.perf_counter()
        result = FeatureBuilder(conn, graph).build(graph[name], window=window)  # one step
        assert result.ok, result.error
        return time.perf_counter() - started

    build("close", whole)
    build("sma_20", whole)  # warm-up, not counted
    timings: dict[str, list[float]] = {kind: [] for kind in windows}
    for _ in range(rounds):
        order = list(windows)
        random.shuffle(order)
        for kind in order:
            timings[kind].append(build("sma_20", windows[kind]))
    conn.close()
    full = [min(t, r) for t, r in zip(timings["table"], timings["range"], strict=True)]
    ratios = [d / f for d, f in zip(timings["day"], full, strict=True)]
    return {
        "symbols": symbols,
        "years": years,
        "rows": rows,
        "rounds": rounds,
        **{f"{kind}_seconds": [round(t, 3) for t in ts] for kind, ts in timings.items()},
        "median_ratio": round(statistics.median(ratios), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(bench(args.symbols, args.years, args.rounds, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
