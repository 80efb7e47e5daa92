"""The registry database: SQLModel tables (``models``), engines (``engine``), versions and
materializations (``store``), usage records (``usage``)."""

from .engine import display_url, dispose_engines, registry_engine
from .store import Registration, Registry

__all__ = ["Registration", "Registry", "display_url", "dispose_engines", "registry_engine"]
