"""Which data a feature request reads: the live table, a version's last publish, a major line's.

``name`` reads the live table as of the lake snapshot the request started at; ``name@1.2.0``
the last publish of that version and ``name@1`` the last publish of major 1, each at its
publish's lake snapshot (``AT (VERSION => n)``). Every read is pinned to a snapshot, which is
what lets a manifest rebuild the same table later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import semver
from sqlalchemy import Engine

from featurestore_dagster.consumers.manifest import (
    FeatureRequest,
    ManifestFeature,
    column_names,
    ttl_seconds,
)
from featurestore_dagster.definitions.fingerprint import data_fingerprint
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import quote_table
from featurestore_dagster.errors import (
    LookaheadError,
    TrainingSetError,
    UnknownFeatureError,
    VersionError,
)
from featurestore_dagster.registry import training_sets as sql

CATALOG = "featurestore"


def lake_snapshot(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The lake's current snapshot id as ``conn`` sees it; None for a plain DuckDB database."""
    try:
        row = conn.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchone()
    except duckdb.Error:
        return None
    return int(row[0]) if row else None


def lake_publishes(conn: duckdb.DuckDBPyConnection, names: Sequence[str]) -> dict[str, list]:
    """Published builds of ``names`` as the lake's commits record them, newest first.

    Each publish commits with extra info (feature, version, data fingerprint, status); the
    snapshot id is the commit's, so this is the lake's own account of what each snapshot holds.
    Empty for a plain DuckDB database.
    """
    wanted = set(names)
    try:
        rows = conn.execute(
            f"SELECT snapshot_id, snapshot_time, commit_extra_info FROM {CATALOG}.snapshots()"
            " WHERE commit_extra_info IS NOT NULL ORDER BY snapshot_id DESC"
        ).fetchall()
    except duckdb.Error:
        return {}
    found: dict[str, list] = {}
    for snapshot_id, when, extra in rows:
        try:
            info = json.loads(extra)
        except (TypeError, ValueError):
            continue
        if not isinstance(info, dict) or info.get("status") != "published":
            continue
        name = info.get("feature_name")
        if name in wanted and info.get("version"):
            found.setdefault(name, []).append(
                sql.Publish(
                    name,
                    str(info["version"]),
                    info.get("data_fingerprint"),
                    int(snapshot_id),
                    when,
                )
            )
    return found


def table_expression(table: str, snapshot_id: int | None) -> str:
    """``"features"."x"`` or ``"features"."x" AT (VERSION => n)``."""
    text = quote_table(table)
    return f"{text} AT (VERSION => {int(snapshot_id)})" if snapshot_id is not None else text


def readable(conn: duckdb.DuckDBPyConnection, expression: str) -> bool:
    """Whether a table expression can be read now (a snapshot not expired, a table there)."""
    try:
        conn.execute(f"SELECT 1 FROM {expression} LIMIT 0")
    except duckdb.Error:
        return False
    return True


def _ttl_for(
    name: str, request_ttl: Any, definition: FeatureDefinition
) -> tuple[str | None, float | None]:
    """The request's TTL (a mapping may name features) wins over the definition's ``ttl:``."""
    value = request_ttl.get(name) if isinstance(request_ttl, Mapping) else request_ttl
    if value is None:
        return definition.ttl, definition.ttl_seconds
    seconds = ttl_seconds(value, f"ttl of feature '{name}'")
    return (value if isinstance(value, str) else f"{seconds:g}s"), seconds


def resolve(
    requests: Sequence[FeatureRequest],
    *,
    graph: FeatureGraph,
    engine: Engine,
    conn: duckdb.DuckDBPyConnection,
    ttl: Any = None,
    allow_lookahead: bool = False,
) -> tuple[list[ManifestFeature], int | None]:
    """Resolve every request to a pinned read; returns the features and the lake snapshot.

    Raises:
        UnknownFeatureError: a name no definition has.
        VersionError: a version that is not registered.
        TrainingSetError: a version never published or no longer retained, a bad TTL.
        LookaheadError: a feature that can see the future, without ``allow_lookahead``.
    """
    for request in requests:
        if request.feature_name not in graph:
            raise UnknownFeatureError(request.feature_name, graph.names)
    if isinstance(ttl, Mapping):
        stray = sorted(set(ttl) - {r.feature_name for r in requests})
        if stray:
            raise TrainingSetError(f"ttl names feature(s) not requested: {', '.join(stray)}")
    names = sorted({r.feature_name for r in requests})
    with engine.connect() as registry:
        published = sql.publishes(registry, names)
        registered = sql.version_snapshots(registry, names)
    snapshot = lake_snapshot(conn)
    if snapshot is not None:
        # The lake's commits say which snapshot holds which publish; registry rows written
        # without a snapshot id cannot pin a read.
        in_lake = lake_publishes(conn, names)
        for name in names:
            if in_lake.get(name) or not any(p.snapshot_id for p in published.get(name, [])):
                published[name] = in_lake.get(name, [])
    problems: list[str] = []
    resolved: list[tuple[FeatureRequest, FeatureDefinition, str, str | None, int | None]] = []
    for request in requests:
        name = request.feature_name
        try:
            resolved.append(
                _resolve_one(
                    request,
                    graph[name],
                    published.get(name, []),
                    registered.get(name, {}),
                    snapshot,
                    conn,
                )
            )
        except TrainingSetError as error:
            problems.append(str(error))
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise TrainingSetError(f"training set refused, nothing computed:\n{body}")
    columns = column_names([r[0] for r in resolved], [r[2] for r in resolved])
    features = []
    for (request, definition, version, fingerprint, snap), column in zip(
        resolved, columns, strict=True
    ):
        ttl_text, seconds = _ttl_for(request.feature_name, ttl, definition)
        features.append(
            ManifestFeature(
                request=request.text,
                feature_name=request.feature_name,
                column=column,
                version=version,
                data_fingerprint=fingerprint,
                snapshot_id=snap,
                table=definition.table_name,
                entity_columns=list(definition.entity_columns),
                timestamp_column=definition.timestamp_column,
                ttl=ttl_text,
                ttl_seconds=seconds,
                lookahead=definition.is_lookahead,
            )
        )
    refuse_lookahead(features, {r.text: d for (r, d, *_rest) in resolved}, allow_lookahead)
    return features, snapshot


def refuse_lookahead(
    features: Sequence[ManifestFeature],
    definitions: Mapping[str, FeatureDefinition],
    allow_lookahead: bool,
) -> None:
    """Raise ``LookaheadError`` naming every feature that can see the future (and why)."""
    if allow_lookahead:
        return
    flagged = [f for f in features if f.lookahead]
    if not flagged:
        return
    lines = []
    for feature in flagged:
        definition = definitions.get(feature.request)
        why = (
            "; ".join(definition.lookahead_reasons)
            if definition is not None
            else "marked lookahead"
        )
        lines.append(f"  - feature '{feature.feature_name}' ({feature.version}): {why}")
    raise LookaheadError(
        "training set refused, nothing computed: these features can see the future, so their"
        " values at a label time may carry later information (leakage):\n"
        + "\n".join(lines)
        + "\npass allow_lookahead=True (--allow-lookahead) to use them anyway"
    )


def _labels(publish: sql.Publish, registered: dict[str, dict]) -> list[str]:
    """The registered versions a publish's data is: those with its data fingerprint (a build
    of unregistered data is none of them, whatever label it carried)."""
    if publish.data_fingerprint:
        return [
            v
            for v, entry in registered.items()
            if entry.get("data_fingerprint") == publish.data_fingerprint
        ]
    return [publish.version] if publish.version in registered else []


def _label(publish: sql.Publish, labels: list[str], within: list[str] | None = None) -> str:
    choices = [v for v in labels if within is None or v in within]
    if publish.version in choices or not choices:
        return publish.version
    return max(choices, key=semver.Version.parse)


def _resolve_one(
    request: FeatureRequest,
    live: FeatureDefinition,
    published: list[sql.Publish],
    registered: dict[str, dict],
    snapshot: int | None,
    conn: duckdb.DuckDBPyConnection,
):
    name = request.feature_name
    if request.version is None:
        if not published:
            return request, live, live.version, data_fingerprint(live), snapshot
        last = published[0]
        version = _label(last, _labels(last, registered))
        return request, live, version, last.data_fingerprint, snapshot
    listed = ", ".join(_by_semver(registered)) or "none"
    if request.is_major:
        major = int(request.version)
        wanted = [v for v in registered if _major(v) == major]
        if not wanted:
            raise VersionError(
                f"feature '{name}' has no registered version in major {major} (registered:"
                f" {listed})"
            )
    else:
        if request.version not in registered:
            raise VersionError(
                f"feature '{name}' has no registered version {request.version} (registered:"
                f" {listed})"
            )
        wanted = [request.version]
    candidates = [p for p in published if set(_labels(p, registered)) & set(wanted)]
    if not candidates:
        raise TrainingSetError(
            f"feature '{name}': version {request.version} was never published; materialize it first"
        )
    last = candidates[0]
    version = (
        request.version
        if not request.is_major
        else _label(last, _labels(last, registered), within=wanted)
    )
    definition = _definition_of(registered.get(version), live)
    if last.snapshot_id is None:
        # A build recorded without a lake snapshot: only readable while it is still live.
        if published[0] is last:
            return request, definition, version, last.data_fingerprint, snapshot
        raise TrainingSetError(
            f"feature '{name}': version {version} is no longer retained (it was replaced and"
            " its publish recorded no lake snapshot); rebuild it"
        )
    if not readable(conn, table_expression(definition.table_name, last.snapshot_id)):
        raise TrainingSetError(
            f"feature '{name}': version {version} (lake snapshot {last.snapshot_id}) is no"
            " longer retained: its snapshot expired; rebuild that version or ask for the live one"
        )
    return request, definition, version, last.data_fingerprint, last.snapshot_id


def _definition_of(entry: dict | None, live: FeatureDefinition) -> FeatureDefinition:
    """The registered snapshot of a version as a definition (keys, table and SQL of that
    time); the live definition when the snapshot cannot be read back."""
    if not entry or not entry.get("snapshot"):
        return live
    try:
        return FeatureDefinition.model_validate(entry["snapshot"])
    except ValueError:
        return live


def _major(version: str) -> int | None:
    try:
        return semver.Version.parse(version).major
    except ValueError:
        return None


def _by_semver(versions) -> list[str]:
    def key(text: str):
        try:
            return (0, semver.Version.parse(text))
        except ValueError:
            return (1, text)

    return sorted(versions, key=key)


def manifest_reads(
    features: Sequence[ManifestFeature], conn: duckdb.DuckDBPyConnection
) -> list[str]:
    """Table expressions of a manifest's features; every pinned snapshot must still be there.

    Raises:
        TrainingSetError: a referenced snapshot expired (or its table is gone).
    """
    expressions = []
    problems = []
    for feature in features:
        expression = table_expression(feature.table, feature.snapshot_id)
        if feature.snapshot_id is not None and not readable(conn, expression):
            problems.append(
                f"feature '{feature.feature_name}' {feature.version}: lake snapshot"
                f" {feature.snapshot_id} is no longer retained"
            )
        expressions.append(expression)
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise TrainingSetError(f"the manifest cannot be rebuilt, nothing computed:\n{body}")
    return expressions
