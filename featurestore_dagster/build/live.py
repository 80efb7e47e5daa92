"""Auditing the live tables as they are, without building: ``featurestore check --no-build``
and a check run from the Dagster UI on its own. The same checks as a build, over the published
table instead of a staging one; nothing is written."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime

import duckdb

from featurestore_dagster.build.checks import evaluate_checks
from featurestore_dagster.build.publish import BuildStatus, FeatureBuild
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.errors import MaterializationError


def audit_live(
    conn: duckdb.DuckDBPyConnection,
    graph: FeatureGraph,
    names: Iterable[str],
    *,
    now: datetime | None = None,
) -> Iterator[FeatureBuild]:
    """One ``FeatureBuild`` per feature of ``names`` for its live table: ``published`` when every
    blocking check passes, ``rejected`` when one fails (the table is left as it is), ``failed``
    when the table cannot be audited (it was never published)."""
    for name in names:
        definition = graph[name]
        started = time.perf_counter()
        result = FeatureBuild(name, definition.version, definition.table_name, BuildStatus.FAILED)
        try:
            checks, profile = evaluate_checks(conn, definition, definition.table_name, now=now)
        except MaterializationError as error:
            result.error = (
                f"live table {definition.table_name} cannot be audited (run `featurestore"
                f" materialize {name}` first): {str(error).splitlines()[0]}"
            )
        else:
            result.checks, result.profile, result.rows = checks, profile, profile.row_count
            blocked = any(c.blocking and not c.passed for c in checks)
            result.status = BuildStatus.REJECTED if blocked else BuildStatus.PUBLISHED
        result.seconds = time.perf_counter() - started
        yield result
