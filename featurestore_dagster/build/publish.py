"""Write-audit-publish in DuckDB, independent of Dagster.

For each feature: build into a staging table beside the live one, audit it with every check,
and only when all blocking checks pass swap it in (drop + rename, one transaction). A rejected
build leaves the live table untouched and its rows in ``_rejected.<feature>``; everything
downstream of a rejected or failed feature is skipped in the same run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import duckdb

from featurestore_dagster.build.checks import CheckOutcome, TableProfile, evaluate_checks
from featurestore_dagster.build.partitions import BuildWindow
from featurestore_dagster.build.transformations import build_into, render_sql
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import (
    REJECTED_SCHEMA,
    STAGING_PREFIX,
    FeatureDefinition,
    FeatureStatus,
)
from featurestore_dagster.definitions.sql import quote_table

log = logging.getLogger("featurestore")


class BuildStatus(StrEnum):
    PUBLISHED = "published"  # every blocking check passed; the live table was replaced
    REJECTED = "rejected"  # a blocking check failed; live table kept, rows in _rejected
    FAILED = "failed"  # the transformation could not run
    SKIPPED = "skipped"  # an upstream was rejected, failed or skipped in this run


@dataclass
class FeatureBuild:
    """What happened to one feature in one run."""

    feature_name: str
    version: str
    table: str
    status: BuildStatus
    rows: int | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    profile: TableProfile | None = None
    seconds: float = 0.0
    error: str | None = None
    rejected_table: str | None = None
    window: str | None = None  # a partition run: the window built, audited and replaced

    @property
    def checks_passed(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    @property
    def checks_failed(self) -> int:
        return sum(1 for c in self.checks if not c.passed)

    @property
    def failed_blocking(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.blocking and not c.passed]

    @property
    def ok(self) -> bool:
        return self.status == BuildStatus.PUBLISHED


CATALOG = "featurestore"


def open_duckdb(path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the feature DuckDB file attached as catalog ``featurestore``.

    A file named ``features.duckdb`` would otherwise be catalog ``features`` and make every
    ``features.<table>`` reference ambiguous with the schema of the same name.
    """
    conn = duckdb.connect()
    mode = " (READ_ONLY)" if read_only else ""
    literal = "'" + str(path).replace("'", "''") + "'"
    conn.execute(f"ATTACH {literal} AS {CATALOG}{mode}")
    conn.execute(f"USE {CATALOG}")
    conn.execute("SET temp_directory = " + literal[:-1] + ".tmp'")
    return conn


def staging_table(definition: FeatureDefinition) -> str:
    schema, table = definition.table_name.split(".")
    return f"{schema}.{STAGING_PREFIX}{table}"


def rejected_table(definition: FeatureDefinition) -> str:
    return f"{REJECTED_SCHEMA}.{definition.feature_name}"


class FeatureBuilder:
    """Builds features of one graph over one DuckDB connection.

    Args:
        conn: an open DuckDB connection (one for the whole run: opening one per feature is
            most of the per-asset overhead).
        graph: the validated feature graph.
        now: the time freshness checks compare with (default: now).
        published_upstream: features already published in this run by another step; with
            the ones this builder publishes, their keys count as checked for the
            ``unique_key`` proof (``definitions.uniqueness``).
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        graph: FeatureGraph,
        *,
        now: datetime | None = None,
        published_upstream: Iterable[str] = (),
    ):
        self.conn = conn
        self.graph = graph
        self.now = now
        self._schemas: set[str] = set()
        self._published: set[str] = set(published_upstream)

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
        staging = staging_table(definition)
        result = FeatureBuild(
            definition.feature_name,
            definition.version,
            definition.table_name,
            BuildStatus.FAILED,
        )
        try:
            self._ensure_schema(definition.table_name.split(".")[0])
            self._require_sources(definition)
            inputs = {p: self.graph[p].table_name for p in definition.upstream_features}
            times = {
                self.graph[p].table_name: self.graph[p].timestamp_column
                for p in definition.upstream_features
            }
            build_into(
                self.conn, definition, staging, inputs, window=window, upstream_time_columns=times
            )
        except Exception as error:  # user SQL or python code may fail in any way
            self._drop(staging)
            result.error = _first_line(error)
            result.seconds = time.perf_counter() - started
            return result

        checks, profile = evaluate_checks(
            self.conn,
            definition,
            quote_table(staging),
            now=judged_at(self.now, window),
            unique_key_proof=self._unique_key_proof(definition),
        )
        result.checks, result.profile, result.rows = checks, profile, profile.row_count
        result.window = window.label if window is not None else None
        if any(c.blocking and not c.passed for c in checks):
            result.status = BuildStatus.REJECTED
            result.rejected_table = self._reject(definition, staging)
        else:
            self._publish(definition, staging, window)
            self._published.add(definition.feature_name)
            result.status = BuildStatus.PUBLISHED
        result.seconds = time.perf_counter() - started
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
        self, definition: FeatureDefinition, staging: str, window: BuildWindow | None = None
    ) -> None:
        live = quote_table(definition.table_name)
        _, table = definition.table_name.split(".")
        replace_window = window is not None and self._exists(definition.table_name)
        self.conn.execute("BEGIN TRANSACTION")
        try:
            if replace_window:  # only the window's rows are swapped
                condition = window.condition(definition.timestamp_column)
                self.conn.execute(f"DELETE FROM {live} WHERE {condition}")
                self.conn.execute(
                    f"INSERT INTO {live} BY NAME SELECT * FROM {quote_table(staging)}"
                )
                self.conn.execute(f"DROP TABLE {quote_table(staging)}")
            else:
                self.conn.execute(f"DROP TABLE IF EXISTS {live}")
                self.conn.execute(f'ALTER TABLE {quote_table(staging)} RENAME TO "{table}"')
            self.conn.execute("COMMIT")
        except duckdb.Error:
            self.conn.execute("ROLLBACK")
            raise

    def _reject(self, definition: FeatureDefinition, staging: str) -> str:
        target = rejected_table(definition)
        self._ensure_schema(REJECTED_SCHEMA)
        self.conn.execute(
            f"CREATE OR REPLACE TABLE {quote_table(target)} AS SELECT * FROM {quote_table(staging)}"
        )
        self._drop(staging)
        return target

    def _exists(self, table: str) -> bool:
        schema, name = table.split(".")
        return bool(
            self.conn.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
                [schema, name],
            ).fetchone()[0]
        )

    def _drop(self, table: str) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {quote_table(table)}")

    def _ensure_schema(self, schema: str) -> None:
        if schema not in self._schemas:
            self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._schemas.add(schema)

    def _require_sources(self, definition: FeatureDefinition) -> None:
        # A probe binds the name as the transformation will, in constant time; a lookup in
        # information_schema lists every table (54 ms a call at 2,000 features: quadratic).
        for source in definition.table_sources:
            try:
                self.conn.execute(f"SELECT * FROM {quote_table(source)} LIMIT 0").fetchall()
            except duckdb.CatalogException:
                raise LookupError(
                    f"source table {source} does not exist in the DuckDB file; load it before"
                    " building (it is an external asset owned by whoever loads the raw data)"
                ) from None

    def _warn_deprecated(self, definition: FeatureDefinition) -> None:
        if definition.status == FeatureStatus.DEPRECATED:
            log.warning("feature '%s' is deprecated", definition.feature_name)
        for parent in definition.upstream_features:
            if self.graph[parent].status == FeatureStatus.DEPRECATED:
                log.warning(
                    "feature '%s' uses deprecated feature '%s'", definition.feature_name, parent
                )


def judged_at(now: datetime | None, window: BuildWindow | None) -> datetime | None:
    """When freshness is judged: a past window at its own end (a backfill of 2020 is not
    stale data), the latest window now."""
    if window is None:
        return now
    end = datetime.combine(window.end, datetime.min.time(), tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    return min(current, end)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
