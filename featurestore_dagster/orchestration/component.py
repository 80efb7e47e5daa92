"""``FeatureStoreComponent``: the feature store as a Dagster Component in a ``dg`` project.

A ``defs.yaml`` such as::

    type: featurestore_dagster.FeatureStoreComponent
    attributes:
      definitions: feature_definitions      # optional; relative to the project root

adds every feature of the definitions folder (assets, checks, schedules, automation) to the
project, exactly as ``workspace.yaml`` does. Every attribute is optional: a missing one comes
from the configuration (environment, ``[tool.featurestore]`` in the project's pyproject.toml,
defaults under ``.featurestore/``), and relative paths are taken from the project root, so the
component, ``FeatureStoreResource`` and the ``featurestore`` command all open the same store.
``dg scaffold defs featurestore_dagster.FeatureStoreComponent NAME`` writes such a file.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from featurestore_dagster.orchestration.scaffolder import FeatureStoreScaffolder


@dg.scaffold_with(FeatureStoreScaffolder)
class FeatureStoreComponent(dg.Component, dg.Resolvable, dg.Model):
    """Versioned features from YAML definitions: one asset per feature, its validation rules
    as asset checks, schedules and automation conditions, built into the feature lake."""

    definitions: str | None = Field(
        default=None,
        description="Folder of feature definition files (relative to the project root)."
        " Default: the configured folder, feature_definitions/ in the project root.",
    )
    registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the version registry. Default: the configured one,"
        " a SQLite file under .featurestore/.",
    )
    lake_catalog: str | None = Field(
        default=None,
        description="Catalog of the feature lake (sqlite:PATH or postgresql://...)."
        " Default: the configured one.",
    )
    lake_data: str | None = Field(
        default=None,
        description="Folder of the lake's data files (relative to the project root)."
        " Default: the configured one.",
    )

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        return dg.ComponentTypeSpec(
            description=cls.__doc__,
            tags=["featurestore", "duckdb"],
            produces=["asset", "asset_check", "schedule", "resource"],
        )

    def settings(self, context: dg.ComponentLoadContext):
        """The store's settings: these attributes over the project's configuration."""
        from featurestore_dagster.orchestration.resource import store_settings

        return store_settings(
            definitions=self.definitions,
            registry_url=self.registry_url,
            lake_catalog=self.lake_catalog,
            lake_data=self.lake_data,
            start=Path(context.project_root),
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from featurestore_dagster.orchestration.definitions import code_location

        return code_location(self.settings(context))
