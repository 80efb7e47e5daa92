"""Training sets (point in time): the spine, one column per feature, and a manifest.

``build_training_set`` checks everything first (features, versions, snapshots, spine keys and
types, lookahead) and only then computes; ``rebuild_training_set`` reads exactly what a
manifest pinned. Recording (registry rows, usage) is the caller's (``consumers.api``).

Example:
    >>> ts = build_training_set(conn, spine, ["stock_rsi_14d", "stock_beta_60d@1"],
    ...                         graph=graph, engine=engine, timestamp_column="date")
    >>> ts.to_pandas().columns[-2:].tolist()
    ['stock_rsi_14d', 'stock_beta_60d']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Engine

from featurestore_dagster.consumers.joins import FeatureRead, correlations, point_in_time_values
from featurestore_dagster.consumers.manifest import (
    ManifestFeature,
    SpineSummary,
    TrainingSetManifest,
    new_training_set_id,
    parse_requests,
)
from featurestore_dagster.consumers.resolve import manifest_reads, resolve, table_expression
from featurestore_dagster.consumers.spine import Spine, load_spine
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.errors import TrainingSetError


class TrainingSet:
    """The spine's columns, unchanged, then one column per feature; and its manifest.

    Attributes:
        manifest: plain JSON-able dict (see ``TrainingSetManifest``).
        training_set_id: the id the manifest is stored under.
    """

    def __init__(self, spine: Spine, values: pa.Table, manifest: TrainingSetManifest):
        self._spine = spine
        self._values = values
        self._manifest = manifest

    def __repr__(self) -> str:
        columns = ", ".join(self._values.column_names)
        return f"TrainingSet({self.training_set_id}: {self.num_rows} rows; {columns})"

    @property
    def manifest(self) -> dict[str, Any]:
        return self._manifest.to_dict()

    @property
    def training_set_id(self) -> str:
        return self._manifest.training_set_id

    @property
    def num_rows(self) -> int:
        return self._spine.row_count

    @property
    def feature_columns(self) -> list[str]:
        return list(self._values.column_names)

    def to_arrow(self) -> pa.Table:
        """The spine's Arrow columns followed by the feature columns."""
        table = self._spine.table
        for name in self._values.column_names:
            table = table.append_column(name, self._values[name])
        return table

    def to_pandas(self):
        """A pandas DataFrame; a pandas spine keeps its index and dtypes."""
        if self._spine.kind == "pandas":
            frame = self._spine.original.copy()
            values = self._values.to_pandas()
            values.index = frame.index
            for name in values.columns:
                frame[name] = values[name]
            return frame
        return self.to_arrow().to_pandas()

    def to_polars(self):
        """A polars DataFrame (a polars spine's columns as given)."""
        import polars as pl

        if self._spine.kind == "polars":
            return self._spine.original.hstack(pl.from_arrow(self._values).get_columns())
        return pl.from_arrow(self.to_arrow())


def _check_columns(spine: Spine, features: Iterable[ManifestFeature], label: str | None) -> None:
    clashes = [f.column for f in features if f.column in spine.columns]
    if clashes:
        raise TrainingSetError(
            f"the spine already has column(s) {', '.join(clashes)}: a feature column would"
            " replace it; rename the spine column"
        )
    if label is not None and label not in spine.columns:
        raise TrainingSetError(
            f"label_column '{label}' is not a spine column (columns: {', '.join(spine.columns)})"
        )
    if label is not None:
        kind = spine.table.schema.field(label).type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind)
        ):
            raise TrainingSetError(f"label_column '{label}' is {kind}, not a number")


def _reads(features: Iterable[ManifestFeature], expressions: Iterable[str]) -> list[FeatureRead]:
    return [
        FeatureRead(
            feature_name=f.feature_name,
            column=f.column,
            table=expression,
            value_column=f.feature_name,
            entity_columns=tuple(f.entity_columns),
            timestamp_column=f.timestamp_column,
            ttl_seconds=f.ttl_seconds,
        )
        for f, expression in zip(features, expressions, strict=True)
    ]


def build_training_set(
    conn: duckdb.DuckDBPyConnection,
    spine: Any,
    features: Iterable[str] | str,
    *,
    graph: FeatureGraph,
    engine: Engine,
    timestamp_column: str | None = None,
    ttl: Any = None,
    allow_lookahead: bool = False,
    label_column: str | None = None,
    model: str | None = None,
    model_version: str | None = None,
    environment: str | None = None,
    execution_id: str | None = None,
    prepare: Callable[[TrainingSetManifest], None] | None = None,
) -> TrainingSet:
    """Resolve, check, then compute a point-in-time training set (nothing recorded here).

    ``prepare(manifest)`` runs after every check and before the joins (the caller refuses
    usage it could not record there, so nothing is computed for nothing).

    Raises:
        UnknownFeatureError, VersionError, TrainingSetError, LookaheadError: before anything
            is computed.
    """
    requests = parse_requests(features)
    if ttl is not None and not isinstance(ttl, dict):
        from featurestore_dagster.consumers.manifest import ttl_seconds

        ttl_seconds(ttl, "ttl")
    loaded = load_spine(spine, conn, timestamp_column)
    resolved, snapshot = resolve(
        requests, graph=graph, engine=engine, conn=conn, ttl=ttl, allow_lookahead=allow_lookahead
    )
    _check_columns(loaded, resolved, label_column)
    manifest = TrainingSetManifest(
        training_set_id=new_training_set_id(),
        created_at=datetime.now(UTC),
        features=resolved,
        ttl=None if ttl is None or isinstance(ttl, dict) else str(ttl),
        spine=SpineSummary(
            row_count=loaded.row_count,
            content_hash=loaded.content_hash(),
            timestamp_column=loaded.timestamp_column,
            columns=loaded.columns,
        ),
        lake_snapshot_id=snapshot,
        allow_lookahead=allow_lookahead,
        model=model,
        model_version=model_version,
        environment=getattr(environment, "value", environment),
        execution_id=execution_id,
        label_column=label_column,
    )
    if prepare is not None:
        prepare(manifest)
    expressions = [table_expression(f.table, f.snapshot_id) for f in resolved]
    values = point_in_time_values(conn, loaded, _reads(resolved, expressions))
    if label_column is not None:
        joined = values.append_column(label_column, loaded.table[label_column])
        by_column = correlations(conn, joined, label_column, values.column_names)
        found = {f.request: by_column[f.column] for f in resolved}
        manifest = manifest.model_copy(update={"correlations": found})
    return TrainingSet(loaded, values, manifest)


def rebuild_training_set(
    conn: duckdb.DuckDBPyConnection, spine: Any, manifest: TrainingSetManifest
) -> TrainingSet:
    """Rebuild a training set exactly as ``manifest`` pinned it, from the same spine.

    Raises:
        TrainingSetError: the spine is not the manifest's (row count or content hash), or a
            pinned snapshot is no longer retained. Nothing is computed.
    """
    loaded = load_spine(spine, conn, manifest.spine.timestamp_column)
    if loaded.row_count != manifest.spine.row_count:
        raise TrainingSetError(
            f"the spine has {loaded.row_count} rows but training set"
            f" {manifest.training_set_id} was built from {manifest.spine.row_count}"
        )
    if loaded.content_hash() != manifest.spine.content_hash:
        raise TrainingSetError(
            f"the spine's content differs from the one training set {manifest.training_set_id}"
            f" was built from (hash {loaded.content_hash()[:12]} against"
            f" {manifest.spine.content_hash[:12]}); pass the same spine"
        )
    expressions = manifest_reads(manifest.features, conn)
    values = point_in_time_values(conn, loaded, _reads(manifest.features, expressions))
    return TrainingSet(loaded, values, manifest)
