"""Write-audit-publish into the lake, independent of Dagster.

A SQL transformation of an unpartitioned feature is built straight into the lake, in ONE lake
transaction: the live table is replaced (DELETE + INSERT when its columns are unchanged, else
DROP + CREATE), audited there (uncommitted rows are seen by this connection only), and when
every blocking check passes its ``_latest.<feature>`` table is replaced and the transaction
commits. Otherwise it rolls back, leaving the live table as it was, and the feature is redone
the staging way below: a rejection copies its rows to ``_rejected.<feature>``, and a statement
that failed inside the transaction (a ``custom_sql`` check erroring at run time aborts it)
gives exactly the result the staging way gives. This skips materializing every row in memory
and copying it into Parquet at publish.

The staging way (python transformations, partition runs, ``check``, and the cases above):
build into a staging table that only this connection sees (an in-memory catalog of the build
connection, spilled to disk when large), audit it with every check (a SQL feature without
``custom_sql`` rules in one read transaction: each statement outside one pays a lake
transaction of its own), then in ONE lake transaction either publish it (replace the live
table and its ``_latest.<feature>`` table; a partition run swaps only its window's rows, see
``build/windows.py``) or reject it (rows copied to ``_rejected.<feature>``, the live table
untouched). Either way another process never sees a staging table or a half-published
feature: it reads the last committed snapshot.

With ``discard=True`` (``featurestore check``) nothing is written to the lake: each feature is
built and audited in a connection-local overlay where downstream features read the staged
upstream results, and the overlay is dropped at the end.

Everything downstream of a rejected or failed feature is skipped in the same run.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import duckdb

from featurestore_dagster.build.checks import evaluate_checks
from featurestore_dagster.build.latest import (
    LatestLost,
    latest_table,
    latest_values_sql,
    update_for_window,
)
from featurestore_dagster.build.overlay import close_overlay, keep_in_overlay, open_overlay
from featurestore_dagster.build.partitions import BuildWindow, in_time_order, judged_at
from featurestore_dagster.build.results import BuildStatus, FeatureBuild
from featurestore_dagster.build.sandbox import execute_one
from featurestore_dagster.build.transformations import (
    build_into,
    render_sql,
    require_sources,
    transformation_sql,
)
from featurestore_dagster.build.windows import holds_every_row, swap_window
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import (
    LATEST_SCHEMA,
    REJECTED_SCHEMA,
    STAGING_PREFIX,
    FeatureDefinition,
    FeatureStatus,
    RuleType,
    TransformationType,
)
from featurestore_dagster.definitions.sql import quote_identifier, quote_table
from featurestore_dagster.storage.lake import (
    CATALOG,
    STAGING,
    attach_staging,
    current_snapshot,
    deleting_is_cheaper,
    in_transaction,
    live_table_rows,
    publish_snapshot,
    rollback,
)

log = logging.getLogger("featurestore")

# Table entries of cached catalog versions a build connection keeps at most (~4 KB each).
CATALOG_CACHE_BUDGET = 250_000


def staging_table(definition: FeatureDefinition) -> str:
    """The connection-local staging table, in the in-memory catalog ``STAGING``."""
    schema, table = definition.table_name.split(".")
    return f"{STAGING}.main.{STAGING_PREFIX}{schema}__{table}"


def rejected_table(definition: FeatureDefinition) -> str:
    return f"{REJECTED_SCHEMA}.{definition.feature_name}"


class FeatureBuilder:
    """Builds features of one graph over one lake connection.

    Args:
        conn: a connection from ``open_build_connection`` (one for the whole run: opening one
            per feature is most of the per-asset overhead).
        graph: the validated feature graph.
        now: the time freshness checks compare with (default: now).
        discard: build and audit only; nothing is written to the lake (``featurestore check``).
        commit_info: definition -> extra facts recorded with each lake commit (version labels,
            fingerprint, run id), so records can be reconciled from the lake's snapshots.
        published_upstream: features already published in this run by another step; with
            the ones this builder publishes, their keys count as checked for the
            ``unique_key`` proof (``definitions.uniqueness``).
        reconnect: opens a fresh locked build connection. A connection keeps the catalog of
            every lake schema version it saw (8 MB per CREATE at 2,000 tables), so past
            ``CATALOG_CACHE_BUDGET`` table entries ``self.conn`` is swapped for a fresh one.
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        graph: FeatureGraph,
        *,
        now: datetime | None = None,
        discard: bool = False,
        commit_info: Callable[[FeatureDefinition], dict[str, Any]] | None = None,
        published_upstream: Iterable[str] = (),
        reconnect: Callable[[], duckdb.DuckDBPyConnection] | None = None,
    ):
        self.conn = conn
        self._reconnect = reconnect
        self._cached_tables = 0  # table entries of the catalog versions conn keeps
        self.graph = graph
        self.now = now
        self.discard = discard
        self.commit_info = commit_info
        attach_staging(conn)
        self._schemas: set[str] = set()
        self._overlay = False
        self._published: set[str] = set(published_upstream)
        self._sources_seen: set[str] = set()  # source tables probed once in this run
        self._table_rows: dict[str, int] | None = None  # lake tables' rows, read once
        self._tables_created = 0  # tables this builder created since (an estimate's part)
        self._schema_changed = False  # the open transaction already did DDL

    def build_all(
        self,
        names: Iterable[str],
        *,
        on_start: Callable[[FeatureDefinition], None] | None = None,
        window: BuildWindow | None = None,
    ) -> Iterator[FeatureBuild]:
        """Build ``names`` in dependency order, skipping what sits downstream of a failure.

        ``window``: a partition run of partitioned features; only that window is rebuilt.
        """
        if self.discard:
            open_overlay(self.conn)
            self._overlay = True
        try:
            yield from self._build_all(names, on_start, window)
        finally:
            if self.discard:
                self.close_overlay()

    def _build_all(self, names, on_start, window) -> Iterator[FeatureBuild]:
        blocked: dict[str, BuildStatus] = {}  # feature -> why its downstream cannot run
        for name in self.graph.topological_order(names):
            definition = self.graph[name]
            bad_parent = next((p for p in definition.upstream_features if p in blocked), None)
            if bad_parent is not None:
                blocked[name] = BuildStatus.SKIPPED
                yield FeatureBuild(
                    name,
                    definition.version,
                    definition.table_name,
                    BuildStatus.SKIPPED,
                    error=f"upstream '{bad_parent}' was {blocked[bad_parent].value}",
                )
                continue
            if on_start:
                on_start(definition)
            result = self.build(definition, window=window)
            if not result.ok:
                blocked[name] = result.status
            yield result

    def build(
        self, definition: FeatureDefinition, *, window: BuildWindow | None = None
    ) -> FeatureBuild:
        """Build one feature with write-audit-publish (only ``window`` of a partitioned one)."""
        if definition.partitions is None:
            window = None
        started = time.perf_counter()
        self._warn_deprecated(definition)
        self._bound_catalog_cache()
        if self._builds_directly(definition, window):
            published = self._build_directly(definition)
            if published is not None:
                published.seconds = time.perf_counter() - started
                return published
        staging = staging_table(definition)
        result = FeatureBuild(
            definition.feature_name,
            definition.version,
            definition.table_name,
            BuildStatus.FAILED,
        )
        # With the lake as default catalog every statement outside a transaction starts a
        # lake transaction of its own (~2 ms of catalog reads): a SQL feature's staging build
        # and audit share one. Not for python code (it gets the connection) nor custom_sql
        # rules (a failing check statement would abort the transaction: see evaluate_checks).
        one_transaction = definition.transformation.transformation_type == TransformationType.SQL
        one_transaction &= all(
            r.rule_type != RuleType.CUSTOM_SQL for r in definition.validation_rules
        )
        try:
            require_sources(self.conn, definition, self._sources_seen)
            times = {
                self.graph[p].table_name: self.graph[p].timestamp_column
                for p in definition.upstream_features
            }
            if one_transaction:
                self.conn.execute("BEGIN TRANSACTION")
                self._load_schemas()  # in the transaction: no lake transaction of its own
            build_into(
                self.conn,
                definition,
                staging,
                self._inputs(definition),
                window=window,
                upstream_time_columns=times,
            )
        except Exception as error:  # user SQL or python code may fail in any way
            if one_transaction:
                rollback(self.conn)
            self._drop(staging)
            result.error = _first_line(error)
            result.seconds = time.perf_counter() - started
            return result

        try:
            checks, profile = evaluate_checks(
                self.conn,
                definition,
                quote_table(staging),
                now=judged_at(self.now, window),
                unique_key_proof=self._unique_key_proof(definition),
            )
            if one_transaction:
                self.conn.execute("COMMIT")
            result.checks, result.profile, result.rows = checks, profile, profile.row_count
            result.window = window.label if window is not None else None
            if any(c.blocking and not c.passed for c in checks):
                result.status = BuildStatus.REJECTED
                if self.discard:
                    result.discarded = True
                else:
                    result.rejected_table = rejected_table(definition)
                    result.snapshot_id = self._reject(definition, staging, result)
            elif self.discard:
                keep_in_overlay(self.conn, definition, staging)  # downstream reads it
                self._published.add(definition.feature_name)
                result.status, result.discarded = BuildStatus.CHECKED, True
            else:
                result.snapshot_id = self._publish(definition, staging, result, window)
                self._published.add(definition.feature_name)
                result.status = BuildStatus.PUBLISHED
        except duckdb.Error as error:  # the lake refused the commit (disk full, catalog gone)
            rollback(self.conn)  # an audit statement that failed left its transaction open
            result.status = BuildStatus.FAILED
            result.error = f"not published: {_first_line(error)}"
            result.rejected_table = None
        finally:
            self._drop(staging)
        result.seconds = time.perf_counter() - started
        return result

    def _builds_directly(self, definition: FeatureDefinition, window: BuildWindow | None) -> bool:
        return (
            not self.discard
            and window is None
            and definition.transformation.transformation_type == TransformationType.SQL
        )

    def _build_directly(self, definition: FeatureDefinition) -> FeatureBuild | None:
        """Build, audit and publish straight into the live table in one lake transaction.

        None when the feature was not published (a blocking check failed, or any statement
        failed): the transaction was rolled back, nothing changed, and the caller redoes the
        feature the staging way, which rejects it or reports the failure exactly as always.
        """
        result = FeatureBuild(
            definition.feature_name,
            definition.version,
            definition.table_name,
            BuildStatus.PUBLISHED,
        )
        try:
            require_sources(self.conn, definition, self._sources_seen)
            sql = transformation_sql(definition)
            proof = self._unique_key_proof(definition)
            self._ensure_schema(definition.table_name.split(".")[0])
            self._ensure_schema(LATEST_SCHEMA)
        except Exception:  # the staging way reports it
            return None
        live = quote_table(definition.table_name)
        token = uuid.uuid4().hex

        def publish() -> None:
            self._replace(definition.table_name, in_time_order(definition, sql))
            checks, profile = evaluate_checks(
                self.conn, definition, live, now=self.now, unique_key_proof=proof
            )
            # A check statement that failed (custom_sql) aborted the transaction: this raises.
            self.conn.execute("SELECT 1").fetchall()
            if any(c.blocking and not c.passed for c in checks):
                raise _NotPublished
            result.checks, result.profile, result.rows = checks, profile, profile.row_count
            self._replace(latest_table(definition), latest_values_sql(definition, live))
            self._commit_message(definition, result, "published", token)

        try:
            result.snapshot_id = self._commit(publish, token)
        except Exception:  # _NotPublished, user SQL, a check, the lake: rolled back
            return None
        self._published.add(definition.feature_name)
        return result

    def _unique_key_proof(self, definition: FeatureDefinition):
        """A proof that the key is unique, when the SQL keeps the key of one upstream that
        was published (so its key was checked unique) in this very run."""
        upstream = definition.upstream_features
        if len(upstream) != 1 or definition.sources or upstream[0] not in self._published:
            return None  # decided before parsing: most features stop here
        from featurestore_dagster.definitions.uniqueness import unique_key_proof

        parent = self.graph[upstream[0]]
        return unique_key_proof(definition, {parent.feature_name: parent}, render_sql(definition))

    # --- steps ------------------------------------------------------------------------------

    def _publish(
        self,
        definition: FeatureDefinition,
        staging: str,
        result: FeatureBuild,
        window: BuildWindow | None = None,
    ) -> int:
        """Replace the live table (only ``window``'s rows of a partition run) and its
        latest-value table in one lake transaction."""
        live = quote_table(definition.table_name)
        source = quote_table(staging)
        self._ensure_schema(definition.table_name.split(".")[0])
        self._ensure_schema(LATEST_SCHEMA)
        token = uuid.uuid4().hex

        latest = quote_table(latest_table(definition))
        incremental = True  # the latest table updated from the window's rows alone

        def publish() -> None:
            # DESCRIBE binds one name (listing the catalog's tables grows with the lake)
            if (
                window is not None
                and _columns(self.conn, live)
                and not holds_every_row(self.conn, definition, live, window)
            ):
                swap_window(self.conn, definition, live, source, window)
                if not (
                    incremental
                    and _columns(self.conn, latest)
                    and update_for_window(self.conn, definition, latest, source, window)
                ):
                    self._replace(latest_table(definition), latest_values_sql(definition, live))
            else:
                rows = in_time_order(definition, f"SELECT * FROM {source}")
                self._replace(definition.table_name, rows, staging)
                self._replace(latest_table(definition), latest_values_sql(definition, source))
            self._commit_message(definition, result, "published", token)

        try:
            return self._commit(publish, token)
        except LatestLost:  # rolled back: again, the latest table from the whole table
            incremental = False
            return self._commit(publish, token)

    def _replace(self, table: str, select: str, like: str | None = None) -> None:
        """Replace the rows of lake table ``table`` by ``select``, inside the caller's
        transaction.

        When the table exists with the columns ``select`` yields (those of table ``like``,
        else of the query itself) and deleting its rows is cheaper than a catalog reload
        (``_swap_rows``), only its rows are swapped (DELETE, INSERT); otherwise it is
        dropped and created again. A schema change of the lake makes every later transaction
        of every connection reload the whole catalog (time O(tables)), so republishing many
        small features with DDL made a build of N features cost O(N^2); a large table's
        DELETE costs more than that reload.
        """
        target = quote_table(table)
        current = _columns(self.conn, target)
        if current:
            wanted = _columns(self.conn, quote_table(like) if like is not None else select)
            if wanted == current and self._swap_rows(table):
                self.conn.execute(f"DELETE FROM {target}")
                execute_one(self.conn, f"INSERT INTO {target} {select}")
                return
            self.conn.execute(f"DROP TABLE {target}")
        else:
            self._tables_created += 1
        execute_one(self.conn, f"CREATE TABLE {target} AS {select}")
        self._schema_changed = True

    def _swap_rows(self, table: str) -> bool:
        """Whether DELETE + INSERT is the cheaper way to replace ``table``'s rows: its old
        rows cost less to delete than the catalog reload a DROP + CREATE causes, and this
        transaction has not already paid that reload with DDL of its own."""
        if self._schema_changed:
            return False
        rows = self._lake_table_rows().get(table.lower())  # None: new since they were read
        return rows is None or deleting_is_cheaper(rows, tables=self._lake_tables())

    def _lake_tables(self) -> int:
        """About how many tables the lake holds: those at the start plus those created."""
        return len(self._lake_table_rows()) + self._tables_created

    def _lake_table_rows(self) -> dict[str, int]:
        """Rows of each lake table, read at the first need (a partition run has none)."""
        if self._table_rows is None:
            self._table_rows = {} if self.discard else live_table_rows(self.conn)
            self._tables_created = 0  # those are in the rows now
        return self._table_rows

    def _reject(self, definition: FeatureDefinition, staging: str, result: FeatureBuild) -> int:
        """Keep the rejected rows inspectable in ``_rejected.<feature>``; live table untouched."""
        self._ensure_schema(REJECTED_SCHEMA)
        token = uuid.uuid4().hex

        def reject() -> None:
            self._replace(
                rejected_table(definition), f"SELECT * FROM {quote_table(staging)}", staging
            )
            self._commit_message(definition, result, "rejected", token)

        return self._commit(reject, token)

    def _commit(self, work: Callable[[], None], token: str) -> int:
        def attempt() -> int:  # in_transaction retries the work on a lost race
            self._schema_changed = False
            started_from = current_snapshot(self.conn)  # (pays the transaction's start)
            work()
            return started_from

        started_from = in_transaction(self.conn, attempt)
        if self._schema_changed:  # a new schema version: conn will cache its catalog
            self._cached_tables += self._lake_tables()
        return publish_snapshot(self.conn, token, started_from=started_from)

    def _bound_catalog_cache(self) -> None:
        """Swap the connection for a fresh one when the catalog versions it keeps would pass
        the budget (between features, outside any transaction)."""
        if self._reconnect is None or self.discard or not self._cached_tables:
            return  # (nothing cached yet: the current catalog fits whatever its size)
        if self._cached_tables + self._lake_tables() <= CATALOG_CACHE_BUDGET:
            return  # the next schema version still fits
        fresh = self._reconnect()
        attach_staging(fresh)
        self.conn.close()
        self.conn = fresh
        self._cached_tables = 0

    def _commit_message(
        self, definition: FeatureDefinition, result: FeatureBuild, status: str, token: str
    ) -> None:
        info: dict[str, Any] = {
            "feature_name": definition.feature_name,
            "version": definition.version,
            "table": definition.table_name,
            "status": status,
            "rows": result.rows,
            "token": token,
        }
        if self.commit_info is not None:
            info.update(self.commit_info(definition))
        self.conn.execute(
            f"CALL {CATALOG}.set_commit_message('featurestore', ?, extra_info => ?)",
            [f"{status} {definition.feature_name} {definition.version}", json.dumps(info)],
        )

    def _inputs(self, definition: FeatureDefinition) -> dict[str, str]:
        """Upstream feature -> the table its python transformation reads."""
        return {p: self.graph[p].table_name for p in definition.upstream_features}

    def close_overlay(self) -> None:
        if self._overlay:
            close_overlay(self.conn)
            self._overlay = False

    def _drop(self, table: str) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {quote_table(table)}")

    def _load_schemas(self) -> None:
        """The lake's schemas, read once (instead of one transaction per CREATE ... IF NOT
        EXISTS)."""
        if not self._schemas:
            query = "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?"
            self._schemas = {name for (name,) in self.conn.execute(query, [CATALOG]).fetchall()}

    def _ensure_schema(self, schema: str) -> None:
        self._load_schemas()
        if schema not in self._schemas:
            statement = f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{quote_identifier(schema)}"
            in_transaction(self.conn, lambda: self.conn.execute(statement))
            self._schemas.add(schema)

    def _warn_deprecated(self, definition: FeatureDefinition) -> None:
        if definition.status == FeatureStatus.DEPRECATED:
            log.warning("feature '%s' is deprecated", definition.feature_name)
        for parent in definition.upstream_features:
            if self.graph[parent].status == FeatureStatus.DEPRECATED:
                log.warning(
                    "feature '%s' uses deprecated feature '%s'", definition.feature_name, parent
                )


def _columns(conn: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """(name, type) of each column of ``relation`` (a table or a query), in order; [] when no
    such table exists.

    DESCRIBE binds one name in the transaction's snapshot (constant time; listing
    ``duckdb_columns()`` grows with the catalog), and a missing table does not abort the
    transaction."""
    try:
        described = execute_one(conn, f"DESCRIBE {relation}").fetchall()
    except duckdb.CatalogException:
        return []
    return [(name, kind) for name, kind, *_ in described]


class _NotPublished(Exception):
    """A blocking check failed in the direct build: roll its transaction back."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
