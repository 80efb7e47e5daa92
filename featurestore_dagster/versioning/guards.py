"""Guards of ``apply`` and of every command: the definitions folder must be the truth, and a
breaking change under production models needs consent. Checks plus one read-only look at the
registry; nothing here writes."""

from __future__ import annotations

from pydantic import BaseModel

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.loader import definition_files
from featurestore_dagster.errors import ConfigError, RegistryError
from featurestore_dagster.models import FeatureVersion
from featurestore_dagster.registry import Registry
from featurestore_dagster.registry.engine import sqlite_file_missing
from featurestore_dagster.versioning.plan import Plan, model_names


class ApplyResult(BaseModel):
    """What ``apply`` did: the versions registered and the features whose definition file is
    gone, archived (``archive_removed``) or kept as they were."""

    versions: list[FeatureVersion]
    archived: list[str] = []
    kept_removed: list[str] = []


def require_definitions(settings: Settings) -> None:
    """Refuse a definitions folder that cannot be the truth: one that does not exist, or one
    holding no definitions while the registry has live (non-archived) features. Registering
    against such a folder would archive every feature.

    Nothing is written; the registry is only looked at when the folder is empty (and only if it
    already exists).

    Raises:
        ConfigError: naming the folder (and, for an empty one, the live features).
    """
    folder = settings.definitions_path
    how = "--definitions, FEATURESTORE_DEFINITIONS or [tool.featurestore] definitions"
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"definitions folder {folder} {what} (set it with {how})")
    if definition_files(folder):
        return
    if sqlite_file_missing(settings.registry_url):
        return
    try:
        rows = Registry(settings.registry_url, create=False).feature_rows()
    except RegistryError:
        return  # no tables yet: nothing registered
    live = sorted(name for name, row in rows.items() if row.get("status") != "archived")
    if live:
        shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        raise ConfigError(
            f"definitions folder {folder} holds no definitions, but the registry has"
            f" {len(live)} live feature(s) ({shown}); refusing to treat them as removed"
            f" (point {how} at the right folder)"
        )


def breaking_message(plan: Plan) -> str:
    """Why ``apply`` needs ``--allow-breaking``: each breaking change and the models using it."""
    lines = []
    for item in plan.needing_consent:
        models = ", ".join(model_names(item.production_models))
        affected = ", ".join(item.downstream_features) or "no downstream features"
        lines.append(
            f"feature '{item.feature_name}': breaking change ({item.registered_version} ->"
            f" {item.declared_version}) affects {affected} and production model(s) {models}"
            f" used within {plan.window_days} days"
        )
    lines.append("apply with --allow-breaking (allow_breaking=True) to register it anyway")
    return "\n".join(lines)
