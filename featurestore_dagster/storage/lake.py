"""The lake: a DuckLake (Parquet data files + a SQLite or PostgreSQL catalog) read through DuckDB.

Every connection to the lake is opened here (``open_lake``), with the ``ducklake``,
``sqlite_scanner`` and ``postgres_scanner`` extensions loaded from their Python packages (no
download at run time) and the lake attached as catalog ``featurestore`` and made the default, so
``features.<name>`` and ``raw.<table>`` resolve with no ambiguity. DuckDB files named under
``[tool.featurestore] attach`` are attached read-only beside it.

Example:
    >>> conn = open_lake(Settings.load(), read_only=True)
    >>> conn.sql("SELECT * FROM features.stock_rsi_14d LIMIT 5").df()
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TypeVar

import duckdb

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.models import LATEST_SCHEMA, REJECTED_SCHEMA
from featurestore_dagster.errors import LakeError

CATALOG = "featurestore"
FEATURES_SCHEMA = "features"
# Schemas the store writes itself; nothing else (a user's raw.* tables) is ours to drop.
STORE_SCHEMAS = (FEATURES_SCHEMA, REJECTED_SCHEMA, LATEST_SCHEMA)
# The build's staging tables: an in-memory catalog of the build connection, so no other
# process can ever see them (DuckDB spills it to the temp directory when it grows).
STAGING = "__featurestore_staging"
# ``featurestore check``'s overlay: views over the lake shadowed by what the check built.
OVERLAY = "__featurestore_check"
# DuckLake attaches its catalog database under this name (SQLite or PostgreSQL alike).
METADATA = f"__ducklake_metadata_{CATALOG}"

_EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}
# A commit can lose a race with another process's commit: SQLite answers "database is
# locked" to the second writer (busy timeouts do not cover a read lock upgraded to a write
# lock), DuckLake a conflict on the snapshot id. Both are safe to retry from the start.
_RETRYABLE = ("database is locked", "conflict", "could not serialize", "deadlock")
COMMIT_ATTEMPTS = 30

T = TypeVar("T")


@cache
def extension_path(name: str) -> str:
    """The ``.duckdb_extension`` file shipped in the extension's Python package."""
    package = _EXTENSION_PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise LakeError(
            f"the DuckDB extension '{name}' is not installed (Python package"
            f" {package.replace('_', '-')}); reinstall featurestore-dagster"
        )
    version = duckdb.__version__
    folder = Path(spec.origin).parent / "extensions"
    exact = folder / f"v{version}" / f"{name}.duckdb_extension"
    if exact.is_file():
        return str(exact)
    found = sorted(folder.glob(f"*/{name}.duckdb_extension"))
    if not found:
        raise LakeError(f"the package {package} holds no {name}.duckdb_extension")
    return str(found[-1])


def catalog_kind(lake_catalog: str) -> str:
    """``sqlite`` or ``postgres``."""
    return "sqlite" if lake_catalog.startswith("sqlite:") else "postgres"


def sqlite_catalog_file(lake_catalog: str) -> str:
    """The file of a ``sqlite:<path>`` catalog."""
    return lake_catalog[len("sqlite:") :]


def ducklake_target(lake_catalog: str) -> str:
    """What follows ``ducklake:`` in the ATTACH string."""
    if catalog_kind(lake_catalog) == "sqlite":
        return lake_catalog
    text = lake_catalog
    if text.startswith("postgres:") and not text.startswith("postgres://"):
        return text  # postgres:<libpq string> as DuckLake spells it
    scheme, _, rest = text.partition("://")
    return f"postgres:postgresql://{rest}"  # drop +psycopg and friends: libpq reads URIs


def display_catalog(lake_catalog: str) -> str:
    """The catalog without a password, for messages."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", lake_catalog)


def attach_statement(settings: Settings, *, read_only: bool) -> str:
    """``ATTACH 'ducklake:...' AS featurestore (DATA_PATH ..., ...)``."""
    options = [f"DATA_PATH {_literal(_data_path(settings))}"]
    if read_only:
        options.append("READ_ONLY")
    else:
        # No data inlining: DuckLake would give every table a catalog table of its own for
        # inlined rows (one more per table id, so per republish), and every lake transaction
        # pays for the catalog's schema size: commits grew O(features). Feature tables are
        # never a few rows anyway.
        options.append("DATA_INLINING_ROW_LIMIT 0")
    if catalog_kind(settings.lake_catalog) == "sqlite":
        options.append("META_BUSY_TIMEOUT 60000")
    target = _literal("ducklake:" + ducklake_target(settings.lake_catalog))
    return f"ATTACH {target} AS {CATALOG} ({', '.join(options)})"


def open_lake(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached as the default catalog ``featurestore``.

    Args:
        settings: where the catalog and the data files live.
        read_only: attach the lake read-only (readers: notebooks, ``featurestore sql``).
            A lake that does not exist yet is created first, empty.

    Raises:
        LakeError: the catalog cannot be reached or the data path cannot be written.
    """
    if read_only and not lake_exists(settings):
        open_lake(settings).close()  # an empty lake, so readers get "no such table" later
    if not read_only:
        _prepare_writable(settings)
        _sqlite_catalog_in_wal_mode(settings)
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if catalog_kind(settings.lake_catalog) == "sqlite":
        # Before the ATTACH uses the secret manager (the sandbox turns it off; it cannot be
        # changed afterwards). A PostgreSQL catalog looks up secrets in that storage.
        config["allow_persistent_secrets"] = False
    conn = duckdb.connect(config=config)
    try:
        # DuckDB draws a progress bar on stdout for queries over ~2 s, which would corrupt
        # `--json` / `--csv` output; the CLI shows its own progress on stderr.
        conn.execute("SET enable_progress_bar = false")
        # Only what this catalog needs: each LOAD reads and verifies a ~35 MB library.
        scanner = f"{catalog_kind(settings.lake_catalog)}_scanner"
        for name in ("ducklake", scanner):
            conn.execute(f"LOAD {_literal(extension_path(name))}")
        try:
            conn.execute(attach_statement(settings, read_only=read_only))
        except duckdb.Error as error:
            raise LakeError(_attach_failure(settings, error)) from None
        conn.execute(f"USE {CATALOG}")
        for name, path in settings.attach:
            try:
                conn.execute(attach_file_statement(name, path))
            except duckdb.Error as error:
                raise LakeError(
                    f"[tool.featurestore] attach: cannot attach {path} as {name}: {error}"
                ) from None
        if not read_only:
            temp = settings.lake_data.parent / "tmp"
            conn.execute(f"SET temp_directory = {_literal(str(temp))}")
    except BaseException:
        conn.close()
        raise
    return conn


def attach_file_statement(name: str, path: Path) -> str:
    """``ATTACH`` of one ``[tool.featurestore] attach`` DuckDB file, read-only.

    Raises:
        LakeError: the file does not exist.
    """
    if not path.is_file():
        raise LakeError(f"[tool.featurestore] attach: {name} = {path}: no such DuckDB file")
    return f"ATTACH {_literal(str(path))} AS {name} (READ_ONLY)"


def lake_exists(settings: Settings) -> bool:
    """False when the catalog was never written (SQLite file missing); True otherwise."""
    if catalog_kind(settings.lake_catalog) == "sqlite":
        return Path(sqlite_catalog_file(settings.lake_catalog)).is_file()
    return True


def _prepare_writable(settings: Settings) -> None:
    """Create the catalog's folder and the data folder; prove the data folder is writable."""
    folders = [settings.lake_data]
    if catalog_kind(settings.lake_catalog) == "sqlite":
        folders.append(Path(sqlite_catalog_file(settings.lake_catalog)).parent)
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LakeError(
                f"cannot create the lake folder {folder}: {error.strerror or error}"
                " (set FEATURESTORE_LAKE_DATA / lake_data to a writable folder)"
            ) from None
    probe = settings.lake_data / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise LakeError(
            f"the lake data folder {settings.lake_data} is not writable:"
            f" {error.strerror or error} (set FEATURESTORE_LAKE_DATA / lake_data)"
        ) from None


def _sqlite_catalog_in_wal_mode(settings: Settings) -> None:
    """Put a SQLite catalog in WAL mode (once; the mode is kept in the file).

    In SQLite's default rollback-journal mode a reader's catalog lookup waits while a writer
    commits (the busy handler sleeps up to 100 ms a try): readers of the lake stalled for up to
    a second during builds. In WAL mode readers never wait for the writer. A catalog that does
    not exist yet is created here, empty and in WAL mode; DuckLake fills it at ATTACH.
    """
    if catalog_kind(settings.lake_catalog) != "sqlite":
        return
    import sqlite3

    path = sqlite_catalog_file(settings.lake_catalog)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as catalog:
            if catalog.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                catalog.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error:
        pass  # another process holds it right now; a later open switches it


def _attach_failure(settings: Settings, error: duckdb.Error) -> str:
    text = str(error).strip()
    where = display_catalog(settings.lake_catalog)
    if "does not match existing data path" in text:
        return (
            f"the lake catalog {where} keeps its data elsewhere than {settings.lake_data}:"
            f" {text.splitlines()[0]} (set FEATURESTORE_LAKE_DATA / lake_data to that folder)"
        )
    reason = " ".join(text.split())
    marker = reason.find("Unable to connect")
    reason = reason[marker:] if marker >= 0 else reason
    if catalog_kind(settings.lake_catalog) == "postgres":
        return (
            f"cannot reach the lake catalog {where}: {reason[:400]} (check"
            " FEATURESTORE_LAKE_CATALOG / lake_catalog and that PostgreSQL is running)"
        )
    return f"cannot open the lake catalog {where}: {reason[:400]}"


def _data_path(settings: Settings) -> str:
    return str(settings.lake_data).rstrip("/") + "/"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- transactions ----------------------------------------------------------------------------


def is_retryable(error: BaseException) -> bool:
    """A commit that lost a race with another writer (retrying it from the start is safe)."""
    text = str(error).lower()
    return any(marker in text for marker in _RETRYABLE)


def in_transaction(conn: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """Run ``work`` in one lake transaction, retried from the start when the commit loses a
    race with another process (several builds write the same lake).

    Raises:
        duckdb.Error: ``work`` failed for another reason, or every attempt lost its race.
    """
    delay = 0.02
    for attempt in range(COMMIT_ATTEMPTS):
        conn.execute("BEGIN TRANSACTION")
        try:
            result = work()
            conn.execute("COMMIT")
            return result
        except BaseException as error:
            rollback(conn)
            if not isinstance(error, duckdb.Error) or not is_retryable(error):
                raise
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 1.6, 1.0)
    raise AssertionError("unreachable")


def rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if any."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (the failed COMMIT ended it)


@contextmanager
def lake_connection(settings: Settings, *, read_only: bool = False) -> Iterator:
    """``open_lake`` as a context manager that closes the connection."""
    conn = open_lake(settings, read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


# --- snapshots -------------------------------------------------------------------------------


def current_snapshot(conn: duckdb.DuckDBPyConnection) -> int:
    """The lake's latest committed snapshot id as this connection sees it."""
    return int(conn.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchone()[0])


def publish_snapshot(
    conn: duckdb.DuckDBPyConnection,
    token: str | None,
    *,
    after: int | None = None,
    started_from: int | None = None,
) -> int:
    """The snapshot id of the commit whose extra info holds ``token`` (None: the current one).

    Another process may commit right after ours, so "the current snapshot" after a commit is
    not necessarily ours: the commit is found by the unique token it carries. Snapshot ids
    follow each other, so when the transaction started from snapshot ``started_from`` the
    commit is ``started_from + 1`` unless someone committed in between: that one catalog row
    is looked at first. Then the current snapshot (ours unless someone committed since),
    and the lake's snapshot list (which grows with the history) only when neither is ours.
    """
    if token is not None and started_from is not None:
        if _carries(conn, started_from + 1, token):
            return started_from + 1
        after = started_from if after is None else after
    current = current_snapshot(conn)
    if token is None or _carries(conn, current, token):
        return current
    row = conn.execute(
        f"SELECT max(snapshot_id) FROM {CATALOG}.snapshots()"
        " WHERE snapshot_id > ? AND contains(commit_extra_info, ?)",
        [after if after is not None else -1, token],
    ).fetchone()
    if row is None or row[0] is None:
        return current
    return int(row[0])


def _carries(conn: duckdb.DuckDBPyConnection, snapshot: int, token: str) -> bool:
    """Whether the commit of ``snapshot`` holds ``token`` in its extra info."""
    row = conn.execute(
        f"SELECT commit_extra_info FROM {METADATA}.ducklake_snapshot_changes WHERE snapshot_id = ?",
        [snapshot],
    ).fetchone()
    return row is not None and row[0] is not None and token in row[0]


def live_table_rows(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """``schema.table`` -> its rows, for every table of the lake's current snapshot (rows of
    its live data files; rows deleted from inside a file still count). One read of the
    catalog's own tables, in time O(tables + files): read once per run, not per feature.
    Empty on a connection without the lake attached."""
    try:
        rows = conn.execute(
            f"""
        SELECT s.schema_name || '.' || t.table_name, coalesce(sum(f.record_count), 0)
        FROM {METADATA}.ducklake_table t
        JOIN {METADATA}.ducklake_schema s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL
        LEFT JOIN {METADATA}.ducklake_data_file f
            ON f.table_id = t.table_id AND f.end_snapshot IS NULL
        WHERE t.end_snapshot IS NULL
        GROUP BY ALL
        """
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {name.lower(): int(count) for name, count in rows}


# Replacing a lake table's rows costs either a DELETE that visits every old row (DML), or a
# DROP + CREATE (DDL) after which the next transaction of every connection reloads the whole
# catalog. Measured here (DuckDB 1.5.5, SQLite catalog): the DELETE ~0.15 us a row (140 ms at
# 1M rows, 1.5 s at 10M); the reload ~15 ms + 0.022 ms a table (15 ms more than after a DML
# commit at 40 tables, 58 ms at 2,000).
DELETE_SECONDS_PER_ROW = 0.15e-6
RELOAD_SECONDS = 0.015
RELOAD_SECONDS_PER_TABLE = 0.022e-3


def deleting_is_cheaper(rows: int, *, tables: int) -> bool:
    """Whether deleting ``rows`` rows of a table costs less than the catalog reload that
    dropping and creating it again would cause in a lake of ``tables`` tables."""
    reload = RELOAD_SECONDS + RELOAD_SECONDS_PER_TABLE * tables
    return rows * DELETE_SECONDS_PER_ROW <= reload


def table_exists(conn: duckdb.DuckDBPyConnection, table: str, snapshot: int | None = None) -> bool:
    """Whether ``schema.table`` exists in the lake (at ``snapshot``, default now)."""
    schema, name = table.split(".")
    if snapshot is None:
        row = conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ?"
            " AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
            [CATALOG, schema, name],
        ).fetchone()
        return bool(row[0])
    try:
        conn.execute(f'SELECT 1 FROM "{schema}"."{name}" AT (VERSION => {int(snapshot)}) LIMIT 0')
    except duckdb.Error:
        return False
    return True


def open_build_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The connection a build runs on: the lake, writable, with its in-memory catalogs.

    Every build (Dagster step, ``featurestore check``) opens its connection here and then
    calls ``lock_build_connection`` before any definition runs (after the bootstrap hook).
    Everything the build attaches is attached here, before the lock.
    """
    conn = open_lake(settings)
    try:
        attach_staging(conn)
        conn.execute(f"ATTACH ':memory:' AS {OVERLAY}")
    except BaseException:
        conn.close()
        raise
    return conn


def lock_build_connection(
    conn: duckdb.DuckDBPyConnection, settings: Settings, file_sources: list[str]
) -> None:
    """Sandbox the build connection: external access off except the lake's data folder (and
    SQLite catalog file) and the declared file sources, configuration locked."""
    from featurestore_dagster.build.sandbox import file_source_access, lock_down

    directories, paths = file_source_access(sorted(set(file_sources)))
    directories.append(_data_path(settings))
    if catalog_kind(settings.lake_catalog) == "sqlite":
        catalog_file = sqlite_catalog_file(settings.lake_catalog)
        paths += [catalog_file, *(f"{catalog_file}-{s}" for s in ("wal", "shm", "journal"))]
    lock_down(conn, allowed_directories=directories, allowed_paths=paths)


def attach_staging(conn: duckdb.DuckDBPyConnection) -> None:
    """Attach the in-memory staging catalog (once per connection; listing the attached
    databases would begin a lake transaction, ~2 ms, on every builder)."""
    conn.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {STAGING}")
