"""featurestore-dagster: a versioned feature registry that lives inside Dagster.

``FeatureStore`` is the Python API (SPEC section 6); its results are the pydantic models
exported here, its failures the typed errors. Importing this package never imports Dagster
(only building assets does).
"""

from typing import TYPE_CHECKING

# The public API, resolved lazily (PEP 562) so that `featurestore --help` and registry-only
# commands do not pay for SQLAlchemy, pydantic models and sqlglot they never use.
_EXPORTS = {
    "BreakingChangeError": "errors",
    "BumpResult": "store",
    "ChangeCategory": "versioning",
    "DataType": "definitions",
    "DefinitionError": "errors",
    "DefinitionIssue": "errors",
    "FeatureDefinition": "definitions",
    "FeatureInfo": "models",
    "FeatureLineage": "usage_models",
    "FeaturePlan": "versioning",
    "FeatureStatistics": "usage_models",
    "FeatureStatus": "definitions",
    "FeatureStore": "store",
    "FeatureStoreError": "errors",
    "FeatureType": "definitions",
    "FeatureUsage": "usage_models",
    "FeatureVersion": "models",
    "FieldDiff": "versioning",
    "MaterializationError": "errors",
    "MaterializationInfo": "models",
    "Plan": "versioning",
    "RegistryError": "errors",
    "Transformation": "definitions",
    "TransitionError": "errors",
    "UnknownFeatureError": "errors",
    "UsageError": "errors",
    "ValidationRule": "definitions",
    "VersionError": "errors",
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
    from .definitions import (
        DataType,
        FeatureDefinition,
        FeatureStatus,
        FeatureType,
        Transformation,
        ValidationRule,
    )
    from .errors import (
        BreakingChangeError,
        DefinitionError,
        DefinitionIssue,
        FeatureStoreError,
        MaterializationError,
        RegistryError,
        TransitionError,
        UnknownFeatureError,
        UsageError,
        VersionError,
    )
    from .models import FeatureInfo, FeatureVersion, MaterializationInfo
    from .store import BumpResult, FeatureStore
    from .usage_models import FeatureLineage, FeatureStatistics, FeatureUsage
    from .versioning import ChangeCategory, FeaturePlan, FieldDiff, Plan

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
    "FeatureStoreError",
    "FeatureType",
    "FeatureUsage",
    "FeatureVersion",
    "FieldDiff",
    "MaterializationError",
    "MaterializationInfo",
    "Plan",
    "RegistryError",
    "Transformation",
    "TransitionError",
    "UnknownFeatureError",
    "UsageError",
    "ValidationRule",
    "VersionError",
    "__version__",
]
