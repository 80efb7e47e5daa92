"""Training sets and latest values on ``FeatureStore``.

``ConsumerAPI`` is a mixin: the host provides ``graph``, ``registry`` (its ``engine``),
``settings`` and ``user``. It opens a read-only lake connection per call, checks everything
before computing, and records (manifest, usage) in one registry transaction afterwards.

Example:
    >>> ts = store.get_training_set(labels, features=["stock_rsi_14d", "stock_beta_60d@1"],
    ...                             timestamp_column="date", model="alpha_ranker",
    ...                             model_version="2.4.0", environment="production",
    ...                             label_column="fwd_return_5d")
    >>> store.record_model_usage(used_by_model="alpha_ranker", model_version="2.4.0",
    ...                          environment="production", features={"stock_rsi_14d": 0.4},
    ...                          training_set_id=ts.training_set_id)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb

from featurestore_dagster.consumers.manifest import TrainingSetManifest, parse_manifest
from featurestore_dagster.consumers.online import (
    LatestCache,
    OnlineFeatures,
    catalog_signature,
    entity_table,
)
from featurestore_dagster.consumers.training_sets import (
    TrainingSet,
    build_training_set,
    rebuild_training_set,
)
from featurestore_dagster.errors import TrainingSetError, UsageError
from featurestore_dagster.registry import training_sets as ts_sql

ENV_MEMORY_LIMIT = "FEATURESTORE_MEMORY_LIMIT"
# A 1,000,000-row spine x 10 features runs at full speed in it (measured: peak RSS 1.83 GB
# against 2.00 GB at 1500MB, same time; at 1200MB the TTL join spills and costs ~15%); larger
# joins spill.
DEFAULT_MEMORY_LIMIT = "1300MB"


def open_reader(settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the feature data (the lake, attached as ``featurestore``),
    its DuckDB memory bounded (``FEATURESTORE_MEMORY_LIMIT``, default 1300MB) and spilling
    under the store's state folder."""
    from featurestore_dagster.storage.lake import open_lake

    conn = open_lake(settings, read_only=True)
    spill = settings.lake_data.parent / "tmp"
    limit = os.environ.get(ENV_MEMORY_LIMIT) or DEFAULT_MEMORY_LIMIT
    try:
        conn.execute(f"SET memory_limit = '{limit.replace(chr(39), '')}'")
        conn.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
    except duckdb.Error as error:
        conn.close()
        raise TrainingSetError(f"{ENV_MEMORY_LIMIT}={limit!r} cannot be used: {error}") from None
    return conn


_READER_LOCK = threading.Lock()


class ConsumerAPI:
    """``get_training_set``, ``get_online_features`` and manifests (mixin of FeatureStore)."""

    graph: Any
    registry: Any
    settings: Any
    user: str | None

    def get_training_set(
        self,
        spine: Any,
        features: Iterable[str] | str | None = None,
        *,
        timestamp_column: str | None = None,
        ttl: Any = None,
        model: str | None = None,
        model_version: str | None = None,
        environment: str | None = None,
        label_column: str | None = None,
        allow_lookahead: bool = False,
        manifest: Mapping[str, Any] | str | None = None,
        execution_id: str | None = None,
    ) -> TrainingSet:
        """Point-in-time training set: for each spine row and feature, the latest value at or
        before the spine's time for the same entity keys (NULL when none, or older than the
        TTL); spine rows kept as given.

        Args:
            spine: pandas/polars DataFrame, pyarrow Table, a SQL query or a table name.
            features: ``name`` (live), ``name@1.2.0`` (that version), ``name@1`` (major 1).
            timestamp_column: the spine's label time (default ``event_timestamp``, else its
                only date/timestamp column).
            ttl: ``"30d"``-style duration for every feature, or a mapping per feature;
                without it each feature's ``ttl:`` applies.
            model, model_version, environment: record one usage record per feature (the
                training set id as ``execution_id``), atomically with the manifest.
            label_column: a numeric spine column; each feature's Pearson correlation with it
                is computed (in DuckDB) and stored as ``correlation_with_target``.
            allow_lookahead: accept features whose transformation can see the future.
            manifest: a stored manifest (dict or training set id): rebuild exactly that
                training set from the same spine; nothing new is recorded.
            execution_id: the run building it (a Dagster run id), kept in the manifest: its
                usage records carry it as ``execution_id`` instead of the training set id.

        Raises:
            UnknownFeatureError, VersionError, TrainingSetError, LookaheadError, UsageError:
                before anything is computed or recorded.
        """
        if manifest is not None:
            return self._rebuild(spine, features, manifest, timestamp_column)
        if features is None:
            raise TrainingSetError("name the features of the training set (features=[...])")
        model_fields = (model, model_version, environment)
        if any(v is not None for v in model_fields) and not all(
            v is not None for v in model_fields
        ):
            raise UsageError(
                "recording a training set's use needs model, model_version and environment together"
            )
        graph = self.graph
        with self._reader() as conn:
            ts = build_training_set(
                conn,
                spine,
                features,
                graph=graph,
                engine=self.registry.engine,
                timestamp_column=timestamp_column,
                ttl=ttl,
                allow_lookahead=allow_lookahead,
                label_column=label_column,
                model=model,
                model_version=model_version,
                environment=environment,
                execution_id=execution_id,
                prepare=self._prepare_usage if model is not None else None,
            )
        self._store_training_set(ts)
        return ts

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor on this store's long-lived read-only lake connection, opened on
        first use (loading the extensions and attaching the lake costs 0.5-1 s each time).

        Outside a transaction a cursor sees every commit made since; its temp tables are its
        own, so concurrent calls do not share a spine. Reopened in a forked child.
        """
        from featurestore_dagster.storage.lake import CATALOG

        with _READER_LOCK:
            held = self.__dict__.get("_training_reader")
            if held is None or held[0] != os.getpid():
                held = self.__dict__["_training_reader"] = (os.getpid(), open_reader(self.settings))
            cursor = held[1].cursor()
        cursor.execute(f"USE {CATALOG}")
        return cursor

    def _prepare_usage(self, manifest: TrainingSetManifest) -> None:
        """Check the model fields and registrations before the joins run."""
        from featurestore_dagster.usage.training import check_registered, training_set_usage_rows

        rows = training_set_usage_rows(self, manifest.to_dict())
        check_registered(self, rows)

    def _store_training_set(self, ts: TrainingSet) -> None:
        from featurestore_dagster.registry.usage import registry_errors, run_write
        from featurestore_dagster.usage.training import training_set_usage_rows

        manifest = ts.manifest
        engine = self.registry.engine

        def store(conn) -> None:
            ts_sql.insert_training_set(conn, manifest, self.user)

        if manifest.get("model") is None:
            with registry_errors(engine):
                run_write(engine, store)
            return
        rows = training_set_usage_rows(self, manifest)
        self._record([], returning=False, rows=rows, also=store)

    def _rebuild(self, spine, features, manifest, timestamp_column) -> TrainingSet:
        if isinstance(manifest, str):
            stored = ts_sql.training_set_manifest(self.registry.engine, manifest)
            if stored is None:
                raise TrainingSetError(f"no training set with id '{manifest}'")
            manifest = stored
        parsed = parse_manifest(manifest)
        if features is not None:
            asked = [features] if isinstance(features, str) else list(features)
            if asked != [f.request for f in parsed.features]:
                raise TrainingSetError(
                    "features and manifest disagree: a manifest fixes the features"
                    f" ({', '.join(f.request for f in parsed.features)}); leave out features="
                )
        if timestamp_column not in (None, parsed.spine.timestamp_column):
            raise TrainingSetError(
                f"the manifest's spine time is '{parsed.spine.timestamp_column}', not"
                f" '{timestamp_column}'"
            )
        with self._reader() as conn:
            return rebuild_training_set(conn, spine, parsed)

    def get_training_set_manifest(self, training_set_id: str) -> dict[str, Any]:
        """The stored manifest of a training set.

        Raises:
            TrainingSetError: no training set has this id.
        """
        stored = ts_sql.training_set_manifest(self.registry.engine, training_set_id)
        if stored is None:
            raise TrainingSetError(f"no training set with id '{training_set_id}'")
        return stored

    def latest_values_in_memory(self, features: Iterable[str]) -> bool:
        """Whether ``get_online_features`` for ``features`` would answer from memory now,
        without reading the lake (a server may then answer on its event loop)."""
        cache = self.__dict__.get("_latest_cache")
        return cache is not None and cache.in_memory(list(features))

    def get_online_features(
        self, entity_rows: Any, features: Iterable[str] | str, ttl: Any = None
    ) -> OnlineFeatures:
        """Latest value of each feature, and its timestamp, for each entity row.

        Args:
            entity_rows: a list of dicts or a DataFrame of entity key columns.
            features: feature names (the live data).
            ttl: values older than this (from now) are NULL; default each feature's ``ttl:``.

        Raises:
            UnknownFeatureError: a name no definition has.
            TrainingSetError: missing key columns, a versioned name, no published data.
        """
        names = [features] if isinstance(features, str) else list(features)
        if not names:
            raise TrainingSetError("no features requested: name at least one")
        versioned = [n for n in names if "@" in n]
        if versioned:
            raise TrainingSetError(
                f"latest values are of the live data: drop the version from {', '.join(versioned)}"
            )
        graph = self.graph
        definitions = [graph[name] for name in names]
        entities = entity_table(entity_rows)
        cache = self.__dict__.get("_latest_cache")
        if cache is None:
            settings = self.settings
            cache = self.__dict__["_latest_cache"] = LatestCache(
                lambda: open_reader(settings),
                signature=catalog_signature(getattr(settings, "lake_catalog", "")),
            )
        return cache.lookup(entities, definitions, ttl=ttl)
