"""How a benchmark's floor opens a lake with plain DuckDB, the same kind as featurestore's
(and the settings of each side's own lake).

The benchmark process computes ``lake_info(settings)`` (the extension files and the ATTACH
statement featurestore itself would use) and passes it to the floor program, which runs in a
process of its own and calls ``connect(info)``: plain DuckDB, no featurestore code on its path.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def lake_settings(folder: Path, definitions: Path):
    """A side's own project: SQLite registry and SQLite-catalog lake under ``folder``."""
    from featurestore_dagster.config import Settings

    return Settings.load(
        definitions_path=definitions,
        registry_url=f"sqlite:///{folder / 'registry.db'}",
        lake_catalog=f"sqlite:{folder / 'lake.sqlite'}",
        lake_data=folder / "lake",
    )


def lake_info(settings) -> dict:
    """What a floor needs to open the lake of ``settings`` (a ``Settings``)."""
    from featurestore_dagster.storage.lake import attach_statement, catalog_kind, extension_path

    scanner = f"{catalog_kind(settings.lake_catalog)}_scanner"
    return {
        "extensions": [extension_path("ducklake"), extension_path(scanner)],
        "attach": attach_statement(settings, read_only=False),
    }


def connect(info: dict) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection with the lake attached and used, and a ``features`` schema."""
    conn = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for path in info["extensions"]:
        conn.execute(f"LOAD '{path}'")
    conn.execute(info["attach"])
    conn.execute("USE featurestore")
    conn.execute("CREATE SCHEMA IF NOT EXISTS features")
    return conn
