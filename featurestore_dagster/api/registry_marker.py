"""A cheap value that changes whenever anyone commits to the registry.

A worker keeps answers built from the registry (``feature_responses``) only while this
marker stays the same; any commit by any process (the command line, another worker, another
server) changes it. Read the marker *before* reading the registry: a commit in between only
makes the kept answer newer than its marker, never older.

- SQLite: ``PRAGMA data_version`` of one connection of our own that never writes (SQLite
  changes it on that connection for every commit by any other connection, in any process),
  with the file's inode (a registry file replaced by another one counts as a change). A
  call costs a few microseconds, no I/O beyond the shared WAL index.
- PostgreSQL: the text of ``pg_current_snapshot()`` (xmin, xmax and the transactions in
  progress): equal snapshots see the same rows, and any commit in the cluster moves xmax or
  the in-progress list. One round trip on a connection of our own.
- Anything else (or a SQLite database in memory): no marker; callers build every answer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from sqlalchemy.engine import make_url


class RegistryMarker:
    """``marker()`` -> a value equal across calls only if nothing was committed in between,
    or ``None`` when the registry offers no cheap marker. ``local`` is true when a call does
    no network round trip (cheap enough for the event loop)."""

    def __init__(self, url: str):
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        self._lock = threading.Lock()
        self._conn: Any = None
        self._path: str | None = None
        self._inode: tuple[int, int] | None = None
        self._dsn: str | None = None
        self._opened = 0  # connections opened so far: a new one's counter starts anew
        self.local = False
        if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._path = os.path.abspath(os.path.expanduser(parsed.database))
            self.local = True
        elif backend == "postgresql":
            self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def available(self) -> bool:
        return self._path is not None or self._dsn is not None

    def __call__(self) -> Any:
        if not self.available:
            return None
        with self._lock:
            try:
                return self._sqlite() if self._path is not None else self._postgres()
            except Exception:  # noqa: BLE001 - no marker this time: the caller reads afresh
                self._close()
                return None

    def _sqlite(self) -> Any:
        stat = os.stat(self._path)
        inode = (stat.st_dev, stat.st_ino)
        if self._conn is None or inode != self._inode:
            self._close()
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
            self._opened += 1
            self._inode = inode
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return (self._opened, inode, version)

    def _postgres(self) -> Any:
        if self._conn is None:
            import psycopg

            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            self._opened += 1
        (snapshot,) = self._conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        return (self._opened, snapshot)

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
