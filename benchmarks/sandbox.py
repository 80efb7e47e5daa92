"""Benchmark: what the sandbox costs, as ratios against floors measured in the same run.

1. Reference check: ``table_references`` (DuckDB parse + sqlglot parse + walk of the whole
   tree + function allow list) on the SQL of N synthetic features, against the floor of
   sqlglot parsing the same SQL alone (what any reference check by parsing must pay).
2. Build: M features (CREATE TABLE AS over a 200k-row input, then a custom_sql-style count),
   run one statement at a time on a locked connection (``execute_one`` + ``lock_down``),
   against the floor of plain ``conn.execute`` on an open connection.
3. YAML: refusing an 800-byte alias bomb (parse + bounded walk), against the floor of
   loading one ordinary definition file.

    uv run python benchmarks/sandbox.py
    uv run python benchmarks/sandbox.py --features 2000 --builds 40 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb
import sqlglot
import yaml

from featurestore_dagster.build.sandbox import execute_one, lock_down
from featurestore_dagster.definitions.loader import DocumentShapeError, _parse_yaml
from featurestore_dagster.definitions.sql import table_references


def synthetic_sql(index: int) -> str:
    return (
        f"WITH base AS (SELECT symbol, date, close FROM features.f{index % 97} t0"
        f" JOIN raw.prices p USING (symbol, date)) SELECT symbol, date,"
        f" avg(close) OVER (PARTITION BY symbol ORDER BY date ROWS {index % 30} PRECEDING)"
        f" - coalesce(lag(close) OVER (PARTITION BY symbol ORDER BY date), 0) AS f{index}"
        " FROM base WHERE close IS NOT NULL"
    )


def interleaved(ours, floor, rounds: int) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``floor``, run alternately ``rounds`` times each."""
    times: dict[str, list[float]] = {"ours": [], "floor": []}
    for _ in range(rounds):
        for key, function in (("ours", ours), ("floor", floor)):
            started = time.perf_counter()
            function()
            times[key].append(time.perf_counter() - started)
    return statistics.median(times["ours"]), statistics.median(times["floor"])


def reference_check(features: int, rounds: int) -> tuple[float, float]:
    sqls = [synthetic_sql(i) for i in range(features)]
    return interleaved(
        lambda: [table_references(s) for s in sqls],
        lambda: [sqlglot.parse(s, read="duckdb") for s in sqls],
        rounds,
    )


def builds(count: int, rounds: int) -> tuple[float, float]:
    def run(locked: bool) -> None:
        conn = duckdb.connect()
        conn.execute(
            "CREATE TABLE prices AS SELECT i % 500 AS symbol, i AS date, random() AS close"
            " FROM range(200000) t(i)"
        )
        if locked:
            lock_down(conn)
        execute = (lambda sql: execute_one(conn, sql)) if locked else conn.execute
        for index in range(count):
            execute(
                f"CREATE OR REPLACE TABLE f{index} AS SELECT symbol, date,"
                f" close * {index} AS v FROM prices"
            )
            execute(f"SELECT count(*) FROM (SELECT * FROM f{index} WHERE v < 0) AS failing")
        conn.close()

    return interleaved(lambda: run(True), lambda: run(False), rounds)


def alias_bomb(rounds: int) -> tuple[float, float, int]:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"
    ordinary = yaml.safe_dump(
        {
            "feature_name": "close_price",
            "feature_type": "raw",
            "data_type": "float",
            "sources": ["raw.prices"],
            "transformation": {"code": "SELECT symbol, date, close AS close_price FROM raw.p"},
            "validation_rules": [{"rule_type": "range", "parameters": {"min": 0}}],
        }
    )

    def refuse() -> None:
        try:
            _parse_yaml(bomb)
        except DocumentShapeError:
            return
        raise AssertionError("the alias bomb was accepted")

    ours, floor = interleaved(refuse, lambda: _parse_yaml(ordinary), rounds)
    return ours, floor, len(bomb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ours, floor = reference_check(args.features, args.rounds)
    print(
        f"reference check, {args.features} SQL transformations: {ours:.3f}s vs sqlglot parse"
        f" alone {floor:.3f}s -> ratio {ours / floor:.2f}x"
    )
    ours, floor = builds(args.builds, args.rounds)
    print(
        f"build, {args.builds} features x 200k rows: locked + one statement at a time"
        f" {ours:.3f}s vs open connection {floor:.3f}s -> ratio {ours / floor:.2f}x"
    )
    ours, floor, size = alias_bomb(max(args.rounds, 5) * 20)
    print(
        f"YAML: {size}-byte alias bomb refused in {ours * 1000:.2f} ms vs one ordinary"
        f" definition loaded in {floor * 1000:.2f} ms -> ratio {ours / floor:.2f}x"
    )
    print(f"(medians of {args.rounds} interleaved rounds, at least 5 for the YAML)")


if __name__ == "__main__":
    main()
