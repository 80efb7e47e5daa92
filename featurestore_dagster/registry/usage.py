"""Usage records in SQL: the write transaction, counters and the aggregate queries.

Functions take a SQLAlchemy ``Connection`` (or an ``Engine`` where they open their own
transaction) and return plain rows; checking lives in ``usage_validation``, result assembly in
``usage.reports`` and the API in ``usage.api``. ``ix_feature_usage_stats`` (registry/models.py)
makes the grouped reads index-only scans.

Concurrency: a whole model run is one transaction. Counters are incremented in SQL
(``usage_count = usage_count + n``), rows are updated in name order so two PostgreSQL writers
cannot deadlock on each other, and on SQLite the transaction takes the write lock up front
(``BEGIN IMMEDIATE``) so it never has to upgrade a read lock under contention. Lock timeouts,
deadlocks and serialization failures are retried as a whole transaction.
"""

from __future__ import annotations

import logging
import operator
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    bindparam,
    case,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from featurestore_dagster.errors import RegistryError
from featurestore_dagster.registry.models import (
    FeatureRecord,
    FeatureVersionRecord,
    UsageRecord,
    as_utc,
)

log = logging.getLogger("featurestore")

USAGE = UsageRecord.__table__
FEATURES = FeatureRecord.__table__
VERSIONS = FeatureVersionRecord.__table__

USAGE_COLUMNS = (
    "feature_name",
    "feature_version",
    "used_by_model",
    "model_version",
    "environment",
    "feature_importance",
    "correlation_with_target",
    "usage_timestamp",
    "execution_id",
    "execution_duration_ms",
)
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL: deadlock_detected, serialization_failure, lock_not_available.
_RETRY_SQLSTATES = {"40P01", "40001", "55P03"}
_IN_CHUNK = 500  # names per IN (...) list: far below every backend's parameter limit

T = TypeVar("T")


# --- engine set-up and the write transaction ---------------------------------------------------


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def enable_sqlite_concurrency(engine: Engine) -> None:
    """Make a SQLite engine safe for several writing processes: WAL and a busy timeout.

    Idempotent; does nothing for other backends. WAL lets readers run while one process
    writes; the busy timeout makes a writer wait for the lock instead of failing at once.
    For engines made outside ``registry.store.registry_engine`` (which does the same itself);
    ``write_transaction`` raises a shorter busy timeout on its own connection either way.
    """
    if not is_sqlite(engine) or event.contains(engine, "connect", _sqlite_on_connect):
        return
    event.listen(engine, "connect", _sqlite_on_connect)


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        database = cursor.execute("PRAGMA database_list").fetchone()
        if database and database[2]:  # a file, not :memory:
            try:
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except Exception as error:  # another process holds the lock; it persists anyway
                log.debug("could not switch SQLite to WAL now: %s", error)
                mode = None
            if mode == "wal":
                # With WAL, NORMAL cannot corrupt the file; it only skips an fsync per commit.
                cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the write lock from its first statement
    on SQLite (``BEGIN IMMEDIATE``) and is a plain transaction elsewhere. Commits on success."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            dbapi = conn.connection.dbapi_connection
            timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0
            if timeout < SQLITE_BUSY_TIMEOUT_MS:  # keep a longer timeout the engine set
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not getattr(dbapi, "in_transaction", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def is_retryable(error: BaseException) -> bool:
    """Lock timeouts, deadlocks and serialization failures: safe to run the transaction again."""
    if not isinstance(error, DBAPIError):
        return False
    original = error.orig
    if getattr(original, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    if isinstance(error, OperationalError):
        text = str(original).lower()
        return "database is locked" in text or "database is busy" in text or "deadlock" in text
    return False


def run_write(
    engine: Engine, work: Callable[[Connection], T], *, attempts: int = 12, max_wait: float = 2.0
) -> T:
    """Run ``work(conn)`` in one write transaction, again from scratch when it hit a lock."""
    for attempt in range(1, attempts + 1):
        try:
            with write_transaction(engine) as conn:
                return work(conn)
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            wait = min(max_wait, 0.02 * 2**attempt) * (0.5 + random.random())
            log.debug("usage write hit a lock (%s); retry %d in %.2fs", error.orig, attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


@contextmanager
def registry_errors(engine: Engine) -> Iterator[None]:
    """Database failures as one readable ``RegistryError`` (lock retries happen before)."""
    try:
        yield
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        url = engine.url.render_as_string(hide_password=True)
        raise RegistryError(f"cannot use the registry at {url}: {reason}") from None


# --- reads used by validation ------------------------------------------------------------------


def _chunks(names: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(names))
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


@dataclass(frozen=True)
class FeatureRow:
    feature_name: str
    status: str
    current_version: str
    usage_count: int
    last_used_at: datetime | None


def registered_features(conn: Connection, names: Iterable[str]) -> dict[str, FeatureRow]:
    """Registry rows of ``names`` (missing names: not registered)."""
    columns = (
        FEATURES.c.feature_name,
        FEATURES.c.status,
        FEATURES.c.current_version,
        FEATURES.c.usage_count,
        FEATURES.c.last_used_at,
    )
    found = {}
    for chunk in _chunks(names):
        for row in conn.execute(select(*columns).where(FEATURES.c.feature_name.in_(chunk))):
            found[row.feature_name] = FeatureRow(
                row.feature_name,
                row.status,
                row.current_version,
                int(row.usage_count or 0),
                as_utc(row.last_used_at),
            )
    return found


def current_versions(conn: Connection, names: Iterable[str]) -> dict[str, str]:
    """Feature name -> current registered version, for the registered ones of ``names``."""
    found: dict[str, str] = {}
    for chunk in _chunks(names):
        query = select(FEATURES.c.feature_name, FEATURES.c.current_version).where(
            FEATURES.c.feature_name.in_(chunk)
        )
        found.update((name, version) for name, version in conn.execute(query))
    return found


def registered_versions(conn: Connection, names: Iterable[str]) -> dict[str, set[str]]:
    """Every registered version of each of ``names``."""
    versions: dict[str, set[str]] = {}
    for chunk in _chunks(names):
        query = select(VERSIONS.c.feature_name, VERSIONS.c.version).where(
            VERSIONS.c.feature_name.in_(chunk)
        )
        for name, version in conn.execute(query):
            versions.setdefault(name, set()).add(version)
    return versions


# --- writes ------------------------------------------------------------------------------------


def insert_usage(
    conn: Connection, rows: Sequence[Mapping[str, Any]], *, returning: bool = False
) -> list[int]:
    """Insert usage rows with one executemany; the new ids (in row order) when ``returning``.

    Rows hold every column of ``USAGE_COLUMNS`` (timestamps aware, UTC).
    """
    if not rows:
        return []
    if returning:
        statement = insert(USAGE).returning(USAGE.c.id, sort_by_parameter_order=True)
        return [row[0] for row in conn.execute(statement, list(rows))]
    # In index order, consecutive rows land on the same index pages: a bulk insert into the
    # (feature_name, ...) indexes ran about 1.5x faster than in arrival order (SQLite).
    ordered = sorted(rows, key=_INDEX_ORDER)
    _executemany(conn, _USAGE_INSERT, ordered, "usage_timestamp")
    return []


_INDEX_ORDER = operator.itemgetter("feature_name", "used_by_model", "model_version")
_USAGE_INSERT = insert(USAGE)


_COUNTER_UPDATE = (
    update(FEATURES)
    .where(FEATURES.c.feature_name == bindparam("b_name"))
    .values(
        usage_count=FEATURES.c.usage_count + bindparam("b_count", type_=Integer),
        # greatest(last_used_at, :ts), NULL-safe and portable (SQLite's max() returns NULL).
        last_used_at=case(
            (
                or_(
                    FEATURES.c.last_used_at.is_(None),
                    FEATURES.c.last_used_at < bindparam("b_last", type_=DateTime(timezone=True)),
                ),
                bindparam("b_last", type_=DateTime(timezone=True)),
            ),
            else_=FEATURES.c.last_used_at,
        ),
    )
)


def add_usage_counts(conn: Connection, counts: Mapping[str, tuple[int, datetime]]) -> int:
    """``usage_count += n`` and ``last_used_at = greatest(last_used_at, ts)`` per feature, in SQL.

    Rows are updated in name order (a fixed lock order). Returns the number of rows matched.
    """
    params = [
        {"b_name": name, "b_count": n, "b_last": last} for name, (n, last) in sorted(counts.items())
    ]
    if not params:
        return 0
    return _executemany(conn, _COUNTER_UPDATE, params, "b_last")


def _executemany(conn: Connection, statement, rows: Sequence[Mapping[str, Any]], time_key: str):
    """``conn.execute(statement, rows)``; returns the rowcount.

    On SQLite the statement goes to the driver's executemany as positional tuples: SQLAlchemy's
    per-row parameter processing costs more than SQLite's own work. The statement is compiled
    once and each distinct timestamp is converted once by the dialect's own DateTime processor,
    so what is stored is exactly what SQLAlchemy would store.
    """
    compiled = _compiled(statement, conn, tuple(rows[0]))
    order = compiled.positiontup
    if not is_sqlite(conn) or not compiled.positional or not order or set(order) - set(rows[0]):
        return conn.execute(statement, list(rows)).rowcount
    time_type = conn.dialect.type_descriptor(DateTime(timezone=True))
    to_text = time_type.bind_processor(conn.dialect) or (lambda value: value)
    converted: dict[Any, Any] = {}
    getter = operator.itemgetter(*order)
    times = [i for i, key in enumerate(order) if key == time_key]
    params = []
    for row in rows:
        values = list(getter(row))
        stamp = values[times[0]]
        text = converted.get(stamp)
        if text is None and stamp is not None:
            text = converted[stamp] = to_text(stamp)
        for index in times:
            values[index] = text
        params.append(tuple(values))
    return conn.exec_driver_sql(compiled.string, params).rowcount


def _compiled(statement, conn: Connection, keys: tuple[str, ...]):
    """``statement`` compiled for the connection's dialect and these parameter names, once
    per engine (compiling the counter update cost more than running it). Only the module's
    constant statements come here, so the cache stays a handful of entries."""
    dialect = conn.dialect
    key = (id(statement), id(dialect), keys)
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement or found[1] is not dialect:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        found = _COMPILED[key] = (statement, dialect, compiled)
    return found[2]


_COMPILED: dict[tuple, tuple[Any, Any, Any]] = {}


# --- aggregate reads -----------------------------------------------------------------------------


def usage_history(conn: Connection, feature_name: str, limit: int) -> list[Any]:
    """The newest ``limit`` usage rows of a feature, newest first."""
    query = (
        select(USAGE)
        .where(USAGE.c.feature_name == feature_name)
        .order_by(USAGE.c.usage_timestamp.desc(), USAGE.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


@dataclass(frozen=True)
class UsageGroup:
    """Aggregates of one (used_by_model, model_version, environment, feature_version) group.

    Sums and counts rather than averages, so callers can merge groups exactly.
    """

    feature_version: str
    used_by_model: str
    model_version: str
    environment: str
    records: int
    importance_count: int
    importance_sum: float
    correlation_count: int
    correlation_sum: float
    first_used_at: datetime | None
    last_used_at: datetime | None


def usage_groups(conn: Connection, feature_name: str) -> list[UsageGroup]:
    """One grouped scan of a feature's usage: every statistic is a merge of these groups."""
    query = (
        select(
            USAGE.c.feature_version,
            USAGE.c.used_by_model,
            USAGE.c.model_version,
            USAGE.c.environment,
            func.count().label("records"),
            func.count(USAGE.c.feature_importance).label("importance_count"),
            func.sum(USAGE.c.feature_importance).label("importance_sum"),
            func.count(USAGE.c.correlation_with_target).label("correlation_count"),
            func.sum(USAGE.c.correlation_with_target).label("correlation_sum"),
            func.min(USAGE.c.usage_timestamp).label("first_used_at"),
            func.max(USAGE.c.usage_timestamp).label("last_used_at"),
        )
        .where(USAGE.c.feature_name == feature_name)
        # In the order of ix_feature_usage_stats: an index-only scan, groups in index order.
        .group_by(
            USAGE.c.used_by_model,
            USAGE.c.model_version,
            USAGE.c.environment,
            USAGE.c.feature_version,
        )
    )
    return [
        UsageGroup(
            row.feature_version,
            row.used_by_model,
            row.model_version,
            row.environment,
            int(row.records),
            int(row.importance_count),
            float(row.importance_sum or 0.0),
            int(row.correlation_count),
            float(row.correlation_sum or 0.0),
            as_utc(row.first_used_at),
            as_utc(row.last_used_at),
        )
        for row in conn.execute(query)
    ]


def feature_model_summaries(conn: Connection, names: Iterable[str] | None = None) -> list[Any]:
    """Rows (feature_name, used_by_model, records, importance_count, importance_sum,
    last_used_at) over every feature (or ``names``), in one grouped query."""
    query = select(
        USAGE.c.feature_name,
        USAGE.c.used_by_model,
        func.count().label("records"),
        func.count(USAGE.c.feature_importance).label("importance_count"),
        func.sum(USAGE.c.feature_importance).label("importance_sum"),
        func.max(USAGE.c.usage_timestamp).label("last_used_at"),
    ).group_by(USAGE.c.feature_name, USAGE.c.used_by_model)
    if names is not None:
        query = query.where(USAGE.c.feature_name.in_(sorted(set(names))))
    return list(conn.execute(query))


# --- training sets -------------------------------------------------------------------------------


def usage_by_execution(
    conn: Connection, execution_id: str, used_by_model: str, model_version: str
) -> list[Any]:
    """The usage rows of one model run, found by its ``execution_id`` (a training set id)."""
    query = (
        select(USAGE)
        .where(USAGE.c.execution_id == execution_id)
        .where(USAGE.c.used_by_model == used_by_model)
        .where(USAGE.c.model_version == model_version)
        .order_by(USAGE.c.id)
    )
    return list(conn.execute(query))


def update_usage_values(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> int:
    """Set ``feature_importance`` / ``correlation_with_target`` (the keys present) of rows by
    id; counters are untouched (no new use). Returns the number of rows updated."""
    total = 0
    for item in updates:
        values = {
            k: item[k] for k in ("feature_importance", "correlation_with_target") if k in item
        }
        if values:
            total += conn.execute(
                update(USAGE).where(USAGE.c.id == item["id"]).values(**values)
            ).rowcount
    return total
