"""Registry engines: one shared SQLAlchemy engine per URL, errors turned into ``RegistryError``.

SQLite files get WAL (readers never wait for the writer), a busy timeout (writers queue instead
of failing) and foreign keys; PostgreSQL a short connect timeout so an unreachable server is
reported quickly.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from featurestore_dagster.errors import RegistryError

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def registry_engine(url: str) -> Engine:
    """A shared engine per URL (SQLite: WAL, busy timeout, foreign keys)."""
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _create_engine(url)
        return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise RegistryError(
            f"registry URL '{url}' is not a database URL (e.g. sqlite:///path/registry.db or"
            " postgresql+psycopg://user@host/db)"
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(url, parsed)
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ArgumentError, ImportError) as error:
        hint = ""
        if parsed.get_backend_name() in {"postgres", "postgresql"}:
            fixed = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
            hint = f"; for PostgreSQL use a postgresql+psycopg:// URL ({fixed})"
        raise RegistryError(
            f"registry URL '{display_url(url)}' cannot be used: {error}{hint}"
        ) from None


def _sqlite_engine(url: str, parsed) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RegistryError(
                f"cannot use the registry at {display_url(url)}: cannot create {folder}:"
                f" {error.strerror or error}"
            ) from None
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA foreign_keys = ON")
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except Exception:  # noqa: BLE001 - another process holds the lock; WAL persists anyway
            pass
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return engine


def sqlite_file_missing(url: str) -> bool:
    """True for a SQLite URL whose file does not exist yet (nothing registered there)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return False
    return parsed.database != ":memory:" and not Path(parsed.database).expanduser().exists()


def dispose_engines() -> None:
    """Close every pooled connection (tests dropping a database call this first)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
