"""featurestore-dagster: a versioned feature registry that lives inside Dagster.

``FeatureStore`` is the Python API ; its results are the pydantic models
exported here, its failures the typed errors. ``FeatureStoreComponent`` adds the store to a
``dg`` project, ``FeatureStoreResource`` and ``feature_asset_key`` serve the user's own assets.
Importing this package never imports Dagster (only building assets and those three do).
"""

import sys
from typing import TYPE_CHECKING

# Cache compiled modules inside a virtual environment even where PYTHONDONTWRITEBYTECODE is set:
# otherwise every start compiles Dagster, SQLAlchemy & co. from source again (the alternative,
# uv's compile-bytecode setting, recompiles all of site-packages on every `uv run` and prints
# "Bytecode compiled N files" each time). benchmarks/startup.py measures both.
if sys.flags.dont_write_bytecode and sys.prefix != sys.base_prefix:
    sys.dont_write_bytecode = False

# The public API, resolved lazily (PEP 562) so that `featurestore --help` and registry-only
# commands do not pay for SQLAlchemy, pydantic models and sqlglot they never use.
_EXPORTS = {
    "BreakingChangeError": "errors",
    "BumpResult": "store",
    "ChangeCategory": "versioning.plan",
    "DataType": "definitions.models",
    "DefinitionError": "errors",
    "DefinitionIssue": "errors",
    "FeatureDefinition": "definitions.models",
    "FeatureInfo": "models",
    "FeatureLineage": "usage.models",
    "FeaturePlan": "versioning.plan",
    "FeatureStatistics": "usage.models",
    "FeatureStatus": "definitions.models",
    "FeatureStore": "store",
    "FeatureStoreComponent": "orchestration.component",
    "FeatureStoreError": "errors",
    "FeatureStoreResource": "orchestration.resource",
    "FeatureType": "definitions.models",
    "FeatureUsage": "usage.models",
    "FeatureVersion": "models",
    "FieldDiff": "versioning.plan",
    "MaterializationError": "errors",
    "LookaheadError": "errors",
    "MaterializationInfo": "models",
    "OnlineFeatures": "consumers.online",
    "Plan": "versioning.plan",
    "RegistryError": "errors",
    "TrainingSet": "consumers.training_sets",
    "TrainingSetError": "errors",
    "Transformation": "definitions.models",
    "TransitionError": "errors",
    "UnknownFeatureError": "errors",
    "UsageError": "errors",
    "ValidationRule": "definitions.models",
    "VersionError": "errors",
    "feature_asset_key": "orchestration.resource",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featurestore_dagster' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from featurestore_dagster.consumers.online import OnlineFeatures
    from featurestore_dagster.consumers.training_sets import TrainingSet
    from featurestore_dagster.definitions.models import (
        DataType,
        FeatureDefinition,
        FeatureStatus,
        FeatureType,
        Transformation,
        ValidationRule,
    )
    from featurestore_dagster.errors import (
        BreakingChangeError,
        DefinitionError,
        DefinitionIssue,
        FeatureStoreError,
        LookaheadError,
        MaterializationError,
        RegistryError,
        TrainingSetError,
        TransitionError,
        UnknownFeatureError,
        UsageError,
        VersionError,
    )
    from featurestore_dagster.models import FeatureInfo, FeatureVersion, MaterializationInfo
    from featurestore_dagster.orchestration.component import FeatureStoreComponent
    from featurestore_dagster.orchestration.resource import FeatureStoreResource, feature_asset_key
    from featurestore_dagster.store import BumpResult, FeatureStore
    from featurestore_dagster.usage.models import FeatureLineage, FeatureStatistics, FeatureUsage
    from featurestore_dagster.versioning.plan import ChangeCategory, FeaturePlan, FieldDiff, Plan

__version__ = "0.1.0"

__all__ = [
    "BreakingChangeError",
    "BumpResult",
    "ChangeCategory",
    "DataType",
    "DefinitionError",
    "DefinitionIssue",
    "FeatureDefinition",
    "FeatureInfo",
    "FeatureLineage",
    "FeaturePlan",
    "FeatureStatistics",
    "FeatureStatus",
    "FeatureStore",
    "FeatureStoreComponent",
    "FeatureStoreError",
    "FeatureStoreResource",
    "FeatureType",
    "FeatureUsage",
    "FeatureVersion",
    "FieldDiff",
    "MaterializationError",
    "LookaheadError",
    "MaterializationInfo",
    "OnlineFeatures",
    "Plan",
    "RegistryError",
    "TrainingSet",
    "TrainingSetError",
    "Transformation",
    "TransitionError",
    "UnknownFeatureError",
    "UsageError",
    "ValidationRule",
    "VersionError",
    "__version__",
    "feature_asset_key",
]
