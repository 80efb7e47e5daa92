"""``FeatureStoreResource``: the feature store for the user's own Dagster assets.

A model-training asset depends on feature assets (``feature_asset_key``), reads what it needs
through the resource and records which features it used; every usage record carries the
Dagster run id as its ``execution_id``, so the Dagster UI, ``featurestore stats`` and the usage
history point at the same run::

    import dagster as dg
    from featurestore_dagster import FeatureStoreResource, feature_asset_key

    @dg.asset(deps=[feature_asset_key("stock_rsi_14d")])
    def alpha_model(feature_store: FeatureStoreResource):
        ts = feature_store.get_training_set(labels, ["stock_rsi_14d"], timestamp_column="date")
        ...  # fit on ts.to_pandas()
        feature_store.record_model_usage(
            used_by_model="alpha_model", model_version="1.0.0", environment="production",
            features={"stock_rsi_14d": 0.4}, training_set_id=ts.training_set_id,
        )

    defs = dg.Definitions(assets=[alpha_model],
                          resources={"feature_store": FeatureStoreResource()})
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from featurestore_dagster.config import Settings

if TYPE_CHECKING:
    from featurestore_dagster.consumers.online import OnlineFeatures
    from featurestore_dagster.consumers.training_sets import TrainingSet
    from featurestore_dagster.store import FeatureStore
    from featurestore_dagster.usage.models import FeatureUsage


def store_settings(
    *,
    definitions: str | Path | None = None,
    registry_url: str | None = None,
    lake_catalog: str | None = None,
    lake_data: str | Path | None = None,
    start: Path | None = None,
) -> Settings:
    """Settings from the component's (or the resource's) attributes over the configuration.

    Relative paths are taken from the project root (the folder of the nearest
    ``pyproject.toml`` above ``start``, default the working directory), like the entries of
    ``[tool.featurestore]``.
    """
    lake = {"lake_catalog": lake_catalog, "lake_data": lake_data}
    lake = {key: value for key, value in lake.items() if value is not None}
    return Settings.load(
        definitions_path=definitions,
        registry_url=registry_url,
        start=start,
        require_project=False,  # a dg project may not hold feature definitions yet
        **lake,
    )


def feature_asset_key(name: str, *, definitions: str | Path | None = None) -> dg.AssetKey:
    """The asset key of feature ``name``, to depend on from your own assets.

    The key follows the feature's ``duckdb_table`` (default ``features/<name>``). When the
    definitions folder (the configured one, or ``definitions``) exists, ``name`` must be one
    of its features, so a typo fails when your code location loads instead of drawing an edge
    to an asset that does not exist.

    Example:
        >>> feature_asset_key("stock_rsi_14d")
        AssetKey(['features', 'stock_rsi_14d'])

    Raises:
        UnknownFeatureError: ``name`` is not defined in an existing definitions folder.
    """
    from featurestore_dagster.orchestration.translator import table_asset_key

    folder = store_settings(definitions=definitions).definitions_path
    tables = _feature_tables(folder.resolve()) if folder.is_dir() else None
    if tables is None:
        return table_asset_key(f"features.{name}")
    if name not in tables:
        from featurestore_dagster.errors import UnknownFeatureError

        raise UnknownFeatureError(name, sorted(tables))
    return table_asset_key(tables[name])


@functools.cache
def _feature_tables(folder: Path) -> dict[str, str]:
    """Feature name -> table of every definition under ``folder`` (read once per process)."""
    from featurestore_dagster.definitions.loader import collect_definitions

    definitions, _issues = collect_definitions(folder)
    return {d.feature_name: d.table_name for d in definitions}


class FeatureStoreResource(dg.ConfigurableResource):
    """The feature store, for assets that train or serve models.

    Every field is optional; a missing one comes from the configuration (environment,
    ``[tool.featurestore]`` in pyproject.toml, defaults under ``.featurestore/``).
    Inside a run, records written through this resource carry the run id as
    ``execution_id``: the usage records of a model run, and those of the training sets it
    reads (their manifests name the run).
    """

    definitions: str | None = Field(
        default=None, description="Folder of feature definitions (relative to the project root)."
    )
    registry_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the version and usage registry."
    )
    lake_catalog: str | None = Field(
        default=None, description="Catalog of the feature lake (sqlite:PATH or postgresql://...)."
    )
    lake_data: str | None = Field(
        default=None, description="Folder of the lake's data files (relative to the project root)."
    )

    _run_id: str | None = PrivateAttr(default=None)
    _store: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run is not None else None

    @property
    def run_id(self) -> str | None:
        """The Dagster run this resource was set up for (None outside a run)."""
        return self._run_id

    @property
    def settings(self) -> Settings:
        return store_settings(
            definitions=self.definitions,
            registry_url=self.registry_url,
            lake_catalog=self.lake_catalog,
            lake_data=self.lake_data,
        )

    @property
    def store(self) -> FeatureStore:
        """The ``FeatureStore`` these fields open (one per resource instance)."""
        if self._store is None:
            from featurestore_dagster.store import FeatureStore

            self._store = FeatureStore(settings=self.settings)
        return self._store

    def feature_asset_key(self, name: str) -> dg.AssetKey:
        """The asset key of feature ``name`` in this store (see ``feature_asset_key``)."""
        return feature_asset_key(name, definitions=self.settings.definitions_path)

    def record_model_usage(
        self,
        *,
        used_by_model: str,
        model_version: str,
        environment: str,
        features: Mapping[str, float | None] | Iterable[str],
        correlations: Mapping[str, float | None] | None = None,
        feature_versions: Mapping[str, str] | None = None,
        execution_duration_ms: float | None = None,
        usage_timestamp: datetime | None = None,
        execution_id: str | None = None,
        training_set_id: str | None = None,
    ) -> list[FeatureUsage]:
        """Record one model run's use of many features, atomically, with the run id as
        ``execution_id`` (``execution_id`` overrides it).

        With ``training_set_id`` (a training set read through ``get_training_set``), these
        importances go to the usage records of that training set, which carry the run that
        built it.

        Raises:
            UnknownFeatureError, UsageError: one bad feature refuses the whole run.
            TrainingSetError: no training set has ``training_set_id``.
        """
        return self.store.record_model_usage(
            used_by_model=used_by_model,
            model_version=model_version,
            environment=environment,
            features=features,
            correlations=correlations,
            feature_versions=feature_versions,
            execution_id=execution_id or self._run_id,
            execution_duration_ms=execution_duration_ms,
            usage_timestamp=usage_timestamp,
            training_set_id=training_set_id,
        )

    def get_training_set(self, spine: Any, features: Any = None, **kwargs: Any) -> TrainingSet:
        """A point-in-time training set, as ``FeatureStore.get_training_set`` (same keyword
        arguments: ``timestamp_column``, ``ttl``, ``model``, ``model_version``,
        ``environment``, ``label_column``, ``allow_lookahead``, ``manifest``).

        Inside a run the manifest names the run (``execution_id``, unless one is passed), so
        the usage records written with ``model=...``, or later by ``record_model_usage(...,
        training_set_id=...)``, carry the run id.

        Raises:
            UnknownFeatureError, VersionError, TrainingSetError, LookaheadError, UsageError:
                before anything is computed or recorded.
        """
        if kwargs.get("manifest") is None:
            kwargs.setdefault("execution_id", self._run_id)
        return self.store.get_training_set(spine, features, **kwargs)

    def read_feature(
        self,
        name: str,
        version: str | None = None,
        snapshot: int | None = None,
        output: str = "pandas",
    ) -> Any:
        """The live table of feature ``name`` (or its last publish of ``version``, or its
        content at lake snapshot ``snapshot``) as pandas, ``"arrow"`` or ``"polars"``.

        Raises:
            UnknownFeatureError: no such feature.
            LakeError: never published, or the version/snapshot is no longer retained.
        """
        return self.store.read_feature(name, version=version, snapshot=snapshot, output=output)

    def get_online_features(
        self, entity_rows: Any, features: Iterable[str] | str, ttl: Any = None
    ) -> OnlineFeatures:
        """Latest value of each feature, and its timestamp, for each entity row (see
        ``FeatureStore.get_online_features``).

        Raises:
            UnknownFeatureError: a name no definition has.
            TrainingSetError: missing key columns, a versioned name, no published data.
        """
        return self.store.get_online_features(entity_rows, features, ttl=ttl)
