"""The registry schema, migrated with Alembic (``registry/migrations``).

A registry written by an earlier release is upgraded in place on first use (``Registry()``
calls ``upgrade_registry``) or by ``featurestore migrate``, its rows kept. A registry from before
Alembic (tables, no ``alembic_version``) is recognized as revision 0001 and upgraded from there.
Several processes may open a registry at once: the upgrade runs under the database's write lock
(SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock) and looks at the state again inside it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

HEAD = "0003"  # the newest revision under migrations/versions
BASELINE = "0001"  # the schema of the first release, before Alembic
_LOCK_ID = 7_311_2026  # PostgreSQL advisory lock of registry migrations
MIGRATIONS = Path(__file__).parent / "migrations"


def current_revision(conn: Connection) -> str | None:
    """The registry's revision: None for an empty database, ``BASELINE`` for a registry
    written before Alembic."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return BASELINE if "features" in tables else None


def _unversioned_revision(conn: Connection) -> str:
    """The revision of tables made from the models without Alembic. They have 0002's
    ``snapshot_id`` or not; 0003 keeps a ``training_sets`` table that exists already."""
    columns = {c["name"] for c in inspect(conn).get_columns("materializations")}
    return "0002" if "snapshot_id" in columns else BASELINE


def is_current(engine: Engine) -> bool:
    """One cheap query: is the registry at ``HEAD`` already (the common case)?"""
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return False
    return value == HEAD


def upgrade_registry(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the registry to ``HEAD``; returns (revision before, revision after)."""
    if is_current(engine):
        return HEAD, HEAD
    from alembic import command
    from alembic.config import Config

    with engine.connect() as conn:
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            before = current_revision(conn)  # again, under the lock
            if before == HEAD:
                return before, HEAD
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            if before == BASELINE and "alembic_version" not in inspect(conn).get_table_names():
                command.stamp(config, _unversioned_revision(conn))
            command.upgrade(config, "head")
    return before, HEAD
