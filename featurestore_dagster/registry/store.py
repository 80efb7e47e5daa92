"""Registry persistence: versions, lifecycle events and materializations over SQLModel tables.

One ``Registry`` per database URL. Writes are batched into one transaction (bulk inserts, one
``executemany`` per table) so registering 1,000 features costs a handful of round trips.
Concurrent writers are settled by the database: ``UNIQUE(feature_name, version)`` plus
row locks (PostgreSQL) or ``BEGIN IMMEDIATE`` (SQLite); a writer that loses the race sees what
won and either finds its change already registered or reports a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    OperationalError,
)
from sqlmodel import SQLModel

from featurestore_dagster.errors import RegistryError
from featurestore_dagster.models import FeatureVersion, MaterializationInfo
from featurestore_dagster.registry.engine import display_url, registry_engine
from featurestore_dagster.registry.models import (
    FeatureEventRecord,
    FeatureRecord,
    FeatureVersionRecord,
    MaterializationRecord,
    UsageRecord,
    as_utc,
    utcnow,
)
from featurestore_dagster.registry.records import (
    Registration,
    _event,
    _public,
    _since,
    _version,
    _version_values,
)
from featurestore_dagster.versioning.plan import ModelUsage, RegisteredFeature, version_key

FEATURES = FeatureRecord.__table__
VERSIONS = FeatureVersionRecord.__table__
EVENTS = FeatureEventRecord.__table__
MATERIALIZATIONS = MaterializationRecord.__table__
USAGE = UsageRecord.__table__
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Registry:
    """The registry database.

    Args:
        url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        create: create missing tables.

    Raises:
        RegistryError: the URL is invalid or the database cannot be reached.
    """

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.engine = registry_engine(url)
        if create:
            self.create_tables()

    def __repr__(self) -> str:
        return f"Registry({display_url(self.url)!r})"

    # --- plumbing ---------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create every registry table that is missing (idempotent, safe to race)."""
        from featurestore_dagster.registry.migrate import upgrade_registry

        with self._errors():
            for attempt in range(3):
                try:
                    # Alembic owns the schema (an older registry is upgraded in place, rows
                    # kept); create_all adds tables no migration knows yet.
                    upgrade_registry(self.engine)
                    SQLModel.metadata.create_all(self.engine)
                    return
                except DBAPIError as error:
                    # Another process created a table between our check and CREATE: look again.
                    if attempt == 2 or "already exists" not in str(error.orig).lower():
                        raise

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise RegistryError(
                f"cannot use the registry at {display_url(self.url)}: {reason}"
                " (check FEATURESTORE_REGISTRY_URL and that the database server is running)"
            ) from None
        except DBAPIError as error:
            if isinstance(error, IntegrityError):
                raise
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise RegistryError(f"registry error at {display_url(self.url)}: {reason}") from None

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """A connection in one transaction, committed at the end (rolled back on error)."""
        with self._errors():
            with self.engine.connect() as conn:
                with conn.begin():
                    if write and conn.dialect.name == "sqlite":
                        # Take the write lock up front: a deferred transaction that upgrades
                        # later fails at once with "database is locked", whatever the timeout.
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield conn

    # --- reads ------------------------------------------------------------------------------

    def registered_state(self, names: Iterable[str] | None = None) -> dict[str, RegisteredFeature]:
        """Every registered feature (or those in ``names``) with its current version, in one
        query."""
        query = select(
            FEATURES.c.feature_name,
            FEATURES.c.status,
            FEATURES.c.current_version,
            VERSIONS.c.snapshot,
            VERSIONS.c.data_fingerprint,
            VERSIONS.c.metadata_fingerprint,
        ).join(
            VERSIONS,
            (VERSIONS.c.feature_name == FEATURES.c.feature_name)
            & (VERSIONS.c.version == FEATURES.c.current_version),
        )
        rows = self._select_in(query, FEATURES.c.feature_name, names)
        return {
            row.feature_name: RegisteredFeature(
                feature_name=row.feature_name,
                status=row.status,
                current_version=row.current_version,
                snapshot=row.snapshot,
                data_fingerprint=row.data_fingerprint,
                metadata_fingerprint=row.metadata_fingerprint,
            )
            for row in rows
        }

    def feature_rows(self, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The ``features`` rows (registered state, usage counters, times) by name."""
        rows = self._select_in(select(FEATURES), FEATURES.c.feature_name, names)
        result = {}
        for row in rows:
            data = dict(row._mapping)
            for key in ("last_used_at", "created_at", "updated_at", "deprecated_at", "archived_at"):
                data[key] = as_utc(data[key])
            result[row.feature_name] = data
        return result

    def _select_in(self, query, column, names: Iterable[str] | None) -> list[Any]:
        with self.transaction() as conn:
            if names is None:
                return list(conn.execute(query))
            names = sorted(set(names))
            rows: list[Any] = []
            for chunk in _chunks(names):
                rows.extend(conn.execute(query.where(column.in_(chunk))))
            return rows

    def versions(self, feature_name: str) -> list[FeatureVersion]:
        """Registered versions of a feature, newest first (semver order)."""
        query = select(VERSIONS).where(VERSIONS.c.feature_name == feature_name)
        with self.transaction() as conn:
            rows = list(conn.execute(query))
        items = [_version(row) for row in rows]
        return sorted(items, key=lambda v: version_key(v.version), reverse=True)

    def version_history(self, *, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
        """Every feature's latest ``limit`` registered versions (newest first), without the
        snapshots, in one query: what the Dagster UI shows beside each asset."""
        query = select(
            VERSIONS.c.feature_name,
            VERSIONS.c.version,
            VERSIONS.c.change_category,
            VERSIONS.c.changelog,
            VERSIONS.c.breaking_changes,
            VERSIONS.c.created_by,
            VERSIONS.c.created_at,
            VERSIONS.c.is_rolled_back,
        )
        history: dict[str, list[dict[str, Any]]] = {}
        for row in self._select_in(query, VERSIONS.c.feature_name, None):
            item = dict(row._mapping)
            item["created_at"] = as_utc(item["created_at"])
            history.setdefault(row.feature_name, []).append(item)
        for name, items in history.items():
            items.sort(key=lambda v: version_key(v["version"]), reverse=True)
            history[name] = items[:limit]
        return history

    def code_versions(self, data_fingerprints: Mapping[str, str]) -> dict[str, str]:
        """Feature name -> earliest registered version with the given data fingerprint.

        Features with no such version are left out (their declared version applies).
        """
        query = select(VERSIONS.c.feature_name, VERSIONS.c.version, VERSIONS.c.data_fingerprint)
        found: dict[str, str] = {}
        for row in self._select_in(query, VERSIONS.c.feature_name, list(data_fingerprints)):
            if row.data_fingerprint != data_fingerprints.get(row.feature_name):
                continue
            best = found.get(row.feature_name)
            if best is None or version_key(row.version) < version_key(best):
                found[row.feature_name] = row.version
        return found

    def events(self, feature_name: str) -> list[dict[str, Any]]:
        query = (
            select(EVENTS)
            .where(EVENTS.c.feature_name == feature_name)
            .order_by(EVENTS.c.created_at.desc(), EVENTS.c.id.desc())
        )
        with self.transaction() as conn:
            return [
                {**row._mapping, "created_at": as_utc(row.created_at)}
                for row in conn.execute(query)
            ]

    def production_usage(self, names: Iterable[str], *, window_days: int) -> list[ModelUsage]:
        """Models that used any of ``names`` in production within the last ``window_days``."""
        from sqlalchemy import func

        since = utcnow() - timedelta(days=window_days)
        query = (
            select(
                USAGE.c.used_by_model,
                USAGE.c.model_version,
                USAGE.c.feature_name,
                func.max(USAGE.c.usage_timestamp).label("last_used_at"),
            )
            .where(USAGE.c.environment == "production", USAGE.c.usage_timestamp >= since)
            .group_by(USAGE.c.used_by_model, USAGE.c.model_version, USAGE.c.feature_name)
        )
        rows = self._select_in(query, USAGE.c.feature_name, names)
        return [
            ModelUsage(
                used_by_model=row.used_by_model,
                model_version=row.model_version,
                feature_name=row.feature_name,
                last_used_at=as_utc(row.last_used_at),
            )
            for row in rows
        ]

    def materializations(self, feature_name: str, *, limit: int = 10) -> list[MaterializationInfo]:
        """The latest builds of a feature, newest first."""
        query = (
            select(MATERIALIZATIONS)
            .where(MATERIALIZATIONS.c.feature_name == feature_name)
            .order_by(MATERIALIZATIONS.c.created_at.desc(), MATERIALIZATIONS.c.id.desc())
            .limit(limit)
        )
        with self.transaction() as conn:
            rows = list(conn.execute(query))
        return [
            MaterializationInfo(**{**row._mapping, "created_at": as_utc(row.created_at)})
            for row in rows
        ]

    # --- writes -----------------------------------------------------------------------------

    def register(
        self,
        registrations: Sequence[Registration],
        *,
        removed: Sequence[str] = (),
        created_by: str | None = None,
    ) -> list[FeatureVersion]:
        """Register versions (and mark removed features archived) in ONE transaction.

        Returns the versions written; one already registered identically by a concurrent
        writer is left out.

        Raises:
            RegistryError: a concurrent writer registered something else for a feature (run
                plan again), or the database cannot be used. Nothing is written then.
        """
        pending = list(registrations)
        for _attempt in range(5):
            try:
                with self.transaction(write=True) as conn:
                    written = self._write(conn, pending, removed, created_by)
                return written
            except IntegrityError:
                # A concurrent writer won a unique key: see what it wrote and retry the rest.
                pending = self._not_yet_registered(pending)
                if not pending and not removed:
                    return []
        raise RegistryError("the registry stayed busy with concurrent writes; try again")

    def _write(
        self,
        conn: Connection,
        registrations: list[Registration],
        removed: Sequence[str],
        created_by: str | None,
    ) -> list[FeatureVersion]:
        now = utcnow()
        names = sorted({r.feature_name for r in registrations} | set(removed))
        current = self._lock_rows(conn, names)
        written = [r for r in registrations if self._check_current(conn, r, current)]
        written.sort(key=lambda r: r.feature_name)  # one lock order for every writer
        inserts, updates, events = [], [], []
        for reg in written:
            status = reg.snapshot.get("status", "draft")
            row = current.get(reg.feature_name)
            values = {
                "status": status,
                "current_version": reg.version,
                "feature_type": reg.snapshot["feature_type"],
                "owner": reg.snapshot.get("owner"),
                "definition_file": reg.definition_file,
                "updated_at": now,
            }
            if row is None:
                values.update(
                    feature_name=reg.feature_name,
                    usage_count=0,
                    created_at=now,
                    deprecated_at=now if status == "deprecated" else None,
                    archived_at=now if status == "archived" else None,
                )
                inserts.append(values)
            else:
                values["b_name"] = reg.feature_name
                values["deprecated_at"] = _since(status, "deprecated", row, now)
                values["archived_at"] = _since(status, "archived", row, now)
                updates.append(values)
            events.append(
                _event(
                    reg.feature_name,
                    reg.event,
                    row,
                    status,
                    reg.version,
                    reg.detail,
                    now,
                    reg.created_by or created_by,
                )
            )
        if inserts:
            conn.execute(insert(FEATURES), inserts)
        if updates:
            conn.execute(
                update(FEATURES).where(FEATURES.c.feature_name == bindparam("b_name")), updates
            )
        version_rows = [_version_values(r, now, created_by) for r in written]
        if version_rows:
            conn.execute(insert(VERSIONS), version_rows)
        marks = [
            {"b_name": r.feature_name, "b_version": v, "rolled_back_at": now}
            for r in written
            for v in r.rolls_back
        ]
        if marks:
            conn.execute(
                update(VERSIONS)
                .where(
                    (VERSIONS.c.feature_name == bindparam("b_name"))
                    & (VERSIONS.c.version == bindparam("b_version"))
                )
                .values(is_rolled_back=True),
                marks,
            )
        for name in removed:
            row = current.get(name)
            if row is None or row["status"] == "archived":
                continue
            conn.execute(
                update(FEATURES)
                .where(FEATURES.c.feature_name == name)
                .values(status="archived", archived_at=now, updated_at=now)
            )
            events.append(
                _event(
                    name,
                    "removed",
                    row,
                    "archived",
                    row["current_version"],
                    "definition file removed",
                    now,
                    created_by,
                )
            )
        if events:
            conn.execute(insert(EVENTS), events)
        return [FeatureVersion(**_public(row)) for row in version_rows]

    def _lock_rows(self, conn: Connection, names: list[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(names):
            query = select(FEATURES).where(FEATURES.c.feature_name.in_(chunk))
            if conn.dialect.name != "sqlite":
                query = query.with_for_update()  # SQLite: BEGIN IMMEDIATE already serializes
            rows.update({row.feature_name: dict(row._mapping) for row in conn.execute(query)})
        return rows

    def _check_current(
        self,
        conn: Connection,
        reg: Registration,
        current: dict[str, dict[str, Any]],
        *,
        strict: bool = False,
    ) -> bool:
        """Whether ``reg`` is still to be written.

        True when the feature is where the plan saw it (``strict``: and the version is not
        there yet); False when the very same version is already registered; a conflict
        otherwise.
        """
        row = current.get(reg.feature_name)
        now_version = row["current_version"] if row else None
        if now_version == reg.expected_version and not strict:
            return True
        existing = conn.execute(
            select(VERSIONS.c.data_fingerprint, VERSIONS.c.metadata_fingerprint).where(
                (VERSIONS.c.feature_name == reg.feature_name) & (VERSIONS.c.version == reg.version)
            )
        ).first()
        if existing is not None:
            if tuple(existing) == (reg.data_fingerprint, reg.metadata_fingerprint):
                return False
            raise RegistryError(
                f"feature '{reg.feature_name}': version {reg.version} is already registered"
                " with a different definition (registered versions are immutable); run"
                " `featurestore plan` again"
            )
        if now_version == reg.expected_version:
            return True
        raise RegistryError(
            f"feature '{reg.feature_name}': another writer registered version {now_version}"
            f" while this change (version {reg.version}) was planned against"
            f" {reg.expected_version or 'nothing'}; run `featurestore plan` again"
        )

    def _not_yet_registered(self, registrations: list[Registration]) -> list[Registration]:
        with self.transaction() as conn:
            current = self._lock_rows(conn, sorted({r.feature_name for r in registrations}))
            return [r for r in registrations if self._check_current(conn, r, current, strict=True)]

    def record_materializations(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Insert materialization rows (``MaterializationRecord`` fields) in one transaction."""
        if not records:
            return
        now = utcnow()
        rows = [{"created_at": now, "checks": [], **record} for record in records]
        with self.transaction(write=True) as conn:
            conn.execute(insert(MATERIALIZATIONS), rows)
