"""The connection-local overlay of ``featurestore check`` (a build with ``discard=True``).

Views over every lake table in the catalog ``OVERLAY`` (attached when the build connection was
opened); the staged result of each feature that passes replaces its view, so downstream SQL
reads what this run built while the lake stays untouched. Dropped at the end of the run.
"""

from __future__ import annotations

import duckdb

from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import quote_identifier, quote_table
from featurestore_dagster.storage.lake import CATALOG, OVERLAY


def open_overlay(conn: duckdb.DuckDBPyConnection) -> None:
    """A view in the overlay for every lake table and view; the overlay becomes the default
    catalog, so unqualified names resolve there."""
    tables = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?"
        " UNION ALL SELECT schema_name, view_name FROM duckdb_views()"
        " WHERE database_name = ? AND NOT internal",
        [CATALOG, CATALOG],
    ).fetchall()
    for schema in sorted({s for s, _ in tables} | {"features"}):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {OVERLAY}.{quote_identifier(schema)}")
    for schema, table in tables:
        name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        conn.execute(f"CREATE VIEW {OVERLAY}.{name} AS SELECT * FROM {CATALOG}.{name}")
    conn.execute(f"USE {OVERLAY}")


def keep_in_overlay(
    conn: duckdb.DuckDBPyConnection, definition: FeatureDefinition, staging: str
) -> None:
    """The staged rows of a feature that passed replace its view: downstream reads them."""
    schema, table = definition.table_name.split(".")
    target = f"{OVERLAY}.{quote_identifier(schema)}.{quote_identifier(table)}"
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {OVERLAY}.{quote_identifier(schema)}")
    conn.execute(f"DROP VIEW IF EXISTS {target}")
    conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {quote_table(staging)}")


def close_overlay(conn: duckdb.DuckDBPyConnection) -> None:
    """The lake is the default catalog again; everything in the overlay is dropped."""
    conn.execute(f"USE {CATALOG}")
    schemas = conn.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?"
        " AND schema_name <> 'main' AND NOT internal",
        [OVERLAY],
    ).fetchall()
    for (schema,) in schemas:
        conn.execute(f"DROP SCHEMA {OVERLAY}.{quote_identifier(schema)} CASCADE")
