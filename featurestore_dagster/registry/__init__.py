"""The registry database: SQLModel tables (``models``), engines (``engine``), versions and
materializations (``store``), usage records (``usage``)."""

from featurestore_dagster.registry.engine import display_url, dispose_engines, registry_engine
from featurestore_dagster.registry.store import Registration, Registry

__all__ = ["Registration", "Registry", "display_url", "dispose_engines", "registry_engine"]
