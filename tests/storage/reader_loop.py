"""A reader process for the concurrency test: reads every feature table of the lake in one
transaction, over and over, until the file named by argv[1] exists; prints what it saw as JSON.

Each read checks what a reader must never see: a feature table with part of its rows, a live
table without its latest values (or the other way round), or a staging table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from featurestore_dagster.config import Settings
from featurestore_dagster.storage.lake import open_lake


def main() -> None:
    stop, names, rows, entities = (
        Path(sys.argv[1]),
        sys.argv[2].split(","),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    conn = open_lake(Settings.load(), read_only=True)
    reads, violations, seen = 0, [], set()
    while not stop.exists():
        conn.execute("BEGIN TRANSACTION")
        tables = {
            (s, t)
            for s, t in conn.execute(
                "SELECT schema_name, table_name FROM duckdb_tables()"
                " WHERE database_name = 'featurestore'"
            ).fetchall()
        }
        if any(t.startswith("__") for _, t in tables):
            violations.append(f"staging table visible: {sorted(tables)}")
        for name in names:
            live, latest = ("features", name) in tables, ("_latest", name) in tables
            if live != latest:
                violations.append(f"{name}: live {live}, latest {latest}")
            if live:
                seen.add(name)
                count = conn.execute(f"SELECT count(*) FROM features.{name}").fetchone()[0]
                latest_count = conn.execute(f"SELECT count(*) FROM _latest.{name}").fetchone()[0]
                if (count, latest_count) != (rows, entities):
                    violations.append(f"{name}: {count} rows, {latest_count} latest")
        conn.execute("COMMIT")
        reads += 1
        time.sleep(0.01)
    conn.close()
    print(json.dumps({"reads": reads, "violations": violations[:20], "seen": sorted(seen)}))


if __name__ == "__main__":
    main()
