"""``FeatureStore``: the Python API over definition files and the registry.

Git holds the definitions, so every operation that changes a feature edits its file (comments
and layout kept) and registers the result in the same call; when registering fails the file is
put back, so nothing is left half-written.

Example:
    >>> store = FeatureStore()
    >>> store.update_feature(feature_name="stock_rsi_14d", description="RSI, Wilder smoothing")
    >>> [v.version for v in store.get_feature_versions("stock_rsi_14d")]
    ['1.0.1', '1.0.0']
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from featurestore_dagster.config import Settings
from featurestore_dagster.consumers.api import ConsumerAPI
from featurestore_dagster.definitions.binder import bind_definitions
from featurestore_dagster.definitions.cache import LoadCache
from featurestore_dagster.definitions.catalog import filter_definitions
from featurestore_dagster.definitions.fingerprint import normalization_cache
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.loader import DEFINITION_SUFFIXES
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import (
    BreakingChangeError,
    DefinitionError,
    DefinitionIssue,
    UnknownFeatureError,
    VersionError,
)
from featurestore_dagster.models import FeatureInfo, FeatureVersion, MaterializationInfo
from featurestore_dagster.registry import Registration, Registry
from featurestore_dagster.storage.api import LakeAPI
from featurestore_dagster.usage.api import UsageAPI
from featurestore_dagster.versioning.changes import DefinitionChanges, impact_window_days
from featurestore_dagster.versioning.code_versions import code_versions, normalization_cache_path
from featurestore_dagster.versioning.editing import (
    DefinitionFile,
    definitions_lock,
    file_edits,
    new_definition_text,
)
from featurestore_dagster.versioning.guards import (
    ApplyResult,
    breaking_message,
    require_definitions,
)
from featurestore_dagster.versioning.plan import (
    ChangeKind,
    Plan,
    RegisteredFeature,
    build_plan,
    bump_version,
    is_at_least,
    parse_version,
    plan_feature,
)

ENV_USER = "FEATURESTORE_USER"


class BumpResult(BaseModel):
    """What ``bump`` wrote into a definition file."""

    feature_name: str
    previous_version: str
    version: str
    registered_version: str | None = None
    category: str | None = None
    changelog: str | None = None
    definition_file: str | None = None
    changed: bool = True


def default_user() -> str | None:
    """Who registers: ``FEATURESTORE_USER``, else the login name."""
    try:
        return os.environ.get(ENV_USER) or getpass.getuser()
    except (KeyError, OSError):
        return None


class FeatureStore(DefinitionChanges, UsageAPI, ConsumerAPI, LakeAPI):
    """Definitions folder + registry + lake, opened from the configuration.

    Args:
        definitions_path: definitions folder (default: configured, ``feature_definitions/``).
        registry_url: registry database URL (default: configured, SQLite under
            ``.featurestore/``).
        lake_catalog: the lake's catalog, ``sqlite:PATH`` or a PostgreSQL URL (default:
            configured, ``sqlite:.featurestore/lake.sqlite``).
        lake_data: the lake's data folder (default: configured, ``.featurestore/lake/``).
        settings: fully resolved settings (the arguments above override it).
        user: recorded as ``created_by`` (default: ``FEATURESTORE_USER`` or the login name).
    """

    def __init__(
        self,
        *,
        definitions_path: str | Path | None = None,
        registry_url: str | None = None,
        lake_catalog: str | None = None,
        lake_data: str | Path | None = None,
        settings: Settings | None = None,
        user: str | None = None,
    ):
        if settings is None:
            settings = Settings.load(
                definitions_path=definitions_path,
                registry_url=registry_url,
                lake_catalog=lake_catalog,
                lake_data=lake_data,
            )
        else:
            from featurestore_dagster.config import resolve_lake_catalog

            settings = settings.with_overrides(
                definitions_path=Path(definitions_path) if definitions_path else None,
                registry_url=registry_url,
                lake_catalog=resolve_lake_catalog(settings.project_root, lake_catalog)
                if lake_catalog
                else None,
                lake_data=Path(lake_data) if lake_data else None,
            )
        self.settings = settings
        self.user = user or default_user()
        self._registry: Registry | None = None
        self._graph: tuple[tuple, FeatureGraph] | None = None
        self._cache: LoadCache | None = None

    def __repr__(self) -> str:
        return f"FeatureStore(definitions_path={str(self.settings.definitions_path)!r})"

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry (tables created on first use)."""
        if self._registry is None:
            self._registry = Registry(self.settings.registry_url)
        return self._registry

    @property
    def graph(self) -> FeatureGraph:
        """The current definitions, reloaded when a file changed (keyed on mtimes)."""
        if not self.settings.definitions_path.exists():  # fresh project: create_feature makes it
            return FeatureGraph([])
        key = self._graph_key()
        if self._graph is None or self._graph[0] != key:
            self._graph = (key, FeatureGraph.from_settings(self.settings))
        return self._graph[1]

    def _graph_key(self) -> tuple:
        """Every definition file with its mtime and size (hidden folders skipped)."""
        entries = []
        for folder, dirs, files in os.walk(self.settings.definitions_path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(DEFINITION_SUFFIXES):
                    stat = os.stat(os.path.join(folder, name))
                    entries.append((os.path.join(folder, name), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def _remember(self, graph: FeatureGraph, changed: Path) -> None:
        """Keep ``graph`` (validated, just written to ``changed``) instead of reloading."""
        if self._graph is None:
            self._graph = (self._graph_key(), graph)
            return
        stat = changed.stat()
        entries = {path: (path, mtime, size) for path, mtime, size in self._graph[0]}
        entries[str(changed)] = (str(changed), stat.st_mtime_ns, stat.st_size)
        self._graph = (tuple(entries[k] for k in sorted(entries)), graph)

    def _lock_path(self) -> Path:
        return self.settings.cache_path.parent / "definitions.lock"

    def _load_cache(self) -> LoadCache:
        if self._cache is None:
            self._cache = LoadCache(self.settings.cache_path)
        return self._cache

    def reload(self) -> FeatureGraph:
        self._graph = None
        return self.graph

    def _registered(self, name: str) -> RegisteredFeature | None:
        return self.registry.registered_state([name]).get(name)

    # --- plan / apply / bump ------------------------------------------------------------------

    def plan(self, *, window_days: int | None = None, bind: bool = True) -> Plan:
        """Compare every definition with the registry; ``bind`` first binds every SQL
        transformation against its inputs' schemas without running it.

        Raises:
            ConfigError: the definitions folder is missing, or empty while the registry holds
                live features (see ``require_definitions``).
            DefinitionError: SQL that does not bind (file, feature, field and both names).
        """
        require_definitions(self.settings)
        if bind and (issues := bind_definitions(self.graph, self.settings)):
            raise DefinitionError(issues)
        window = window_days if window_days is not None else impact_window_days(self.settings)
        registry = self.registry
        graph = self.graph
        with normalization_cache(normalization_cache_path(self.settings)):
            return build_plan(
                graph,
                registry.registered_state(),
                production_usage=lambda names: registry.production_usage(names, window_days=window),
                window_days=window,
            )

    def apply(
        self,
        *,
        allow_breaking: bool = False,
        window_days: int | None = None,
        archive_removed: bool = False,
    ) -> list[FeatureVersion]:
        """Register everything ``plan`` shows, in one transaction (all or nothing).

        A registered feature whose definition file is gone is archived only with
        ``archive_removed=True``; otherwise it stays as it is. ``apply_plan`` also says which
        features were archived or kept.

        Raises:
            VersionError: a changed definition's version is too small (every one is named).
            BreakingChangeError: a breaking change affects production models and
                ``allow_breaking`` is False.
        """
        return self.apply_plan(
            allow_breaking=allow_breaking, window_days=window_days, archive_removed=archive_removed
        ).versions

    def apply_plan(
        self,
        *,
        allow_breaking: bool = False,
        window_days: int | None = None,
        archive_removed: bool = False,
    ) -> ApplyResult:
        """``apply`` returning what it did: versions registered, features archived, and the
        removed features kept because ``archive_removed`` was not given."""
        plan = self.plan(window_days=window_days)
        refused = plan.refused
        if refused:
            reasons = "\n".join(f"  - {f.reason or f.feature_name}" for f in refused)
            raise VersionError(f"nothing registered; {len(refused)} refused:\n{reasons}")
        if not allow_breaking and plan.needing_consent:
            raise BreakingChangeError(breaking_message(plan))
        graph = self.graph
        registrations = [
            # A rollback interrupted after its file was written registers as that rollback.
            self._registration(d, item, **self.interrupted_extras(d))
            for item in plan.features
            if item.change in (ChangeKind.NEW, ChangeKind.CHANGED)
            for d in [graph[item.feature_name]]
        ]
        removed = [f.feature_name for f in plan.features if f.change == ChangeKind.REMOVED]
        archived = removed if archive_removed else []
        versions = self.registry.register(registrations, removed=archived, created_by=self.user)
        for registration in registrations:
            self._journal().clear(registration.feature_name)
        return ApplyResult(
            versions=versions,
            archived=archived,
            kept_removed=[] if archive_removed else removed,
        )

    def _registration(
        self, definition: FeatureDefinition, item, *, created_by: str | None = None, **extra: Any
    ) -> Registration:
        category = "initial" if item.change == ChangeKind.NEW else item.category
        return Registration(
            feature_name=definition.feature_name,
            version=definition.version,
            change_category=category,
            snapshot=definition.to_payload(),
            data_fingerprint=item.data_fingerprint,
            metadata_fingerprint=item.metadata_fingerprint,
            changelog=definition.changelog,
            # The flag describes this version: a true kept in the file from an earlier
            # breaking version does not make a metadata edit breaking.
            breaking_changes=category == "breaking"
            or (category == "initial" and definition.breaking_changes),
            created_by=created_by or self.user,
            expected_version=item.registered_version,
            definition_file=str(definition.path) if definition.path else None,
            **extra,
        )

    def bump(
        self, feature_name: str, level: str | None = None, changelog: str | None = None
    ) -> BumpResult:
        """Write the required (or the asked) version and a changelog into the definition file.

        Raises:
            VersionError: ``level`` is smaller than the change requires (names the smallest
                valid version).
        """
        with definitions_lock(self._lock_path()):
            return self._bump(feature_name, level, changelog)

    def _bump(self, feature_name: str, level: str | None, changelog: str | None) -> BumpResult:
        definition = self.graph[feature_name]
        registered = self._registered(feature_name)
        item = plan_feature(definition, registered)
        base = registered.current_version if registered else definition.version
        result = BumpResult(
            feature_name=feature_name,
            previous_version=definition.version,
            version=definition.version,
            registered_version=registered.current_version if registered else None,
            category=item.category,
            definition_file=str(definition.path),
        )
        if level is None and item.change in (ChangeKind.NEW, ChangeKind.UNCHANGED):
            return result.model_copy(update={"changed": False})
        if level is None:
            version = item.minimum_version
        else:
            version = bump_version(base, level)
            if item.minimum_version and not is_at_least(version, item.minimum_version):
                raise VersionError(
                    f"feature '{feature_name}': --{level} gives {version}, but a {item.category}"
                    f" change needs at least a {item.required_bump} bump over {base}: the"
                    f" smallest valid version is {item.minimum_version}"
                )
        text = changelog or definition.changelog
        if changelog is None and item.diffs:
            text = "Changed " + ", ".join(sorted({d.field for d in item.diffs}))
        document = DefinitionFile(definition.path)
        # The flag describes the version it sits on: true only for a breaking change.
        fields = {"version": version, "changelog": text}
        breaking = item.category == "breaking"
        if breaking or definition.breaking_changes:
            fields["breaking_changes"] = breaking
        document.set_fields(feature_name, fields)
        with file_edits() as edits:
            edits.write(definition.path, document.render())
        return result.model_copy(update={"version": version, "changelog": text})

    def code_versions(self) -> dict[str, str]:
        """Feature -> code version (see ``code_versions``)."""
        return code_versions(self.graph, self.registry, settings=self.settings)

    # --- features -----------------------------------------------------------------------------

    def create_feature(
        self, *, path: str | Path | None = None, created_by: str | None = None, **fields: Any
    ) -> FeatureInfo:
        """Write a new definition file (``<definitions>/<feature_name>.yaml``) and register it.

        Keyword arguments are the definition's fields.

        Raises:
            DefinitionError: invalid fields, an existing name or file, a broken graph.
            VersionError: the name was registered before and ``version`` is not above it.
        """
        with definitions_lock(self._lock_path()):
            self._create_feature(path, created_by, fields)
        return self.get_feature(fields["feature_name"])

    def _create_feature(self, path, created_by, fields: dict[str, Any]) -> None:
        name = fields.get("feature_name")
        definition = self._validate(dict(fields), file=None)
        graph = self.graph
        if name in graph:
            raise DefinitionError(
                DefinitionIssue(
                    f"feature already defined in {graph[name].path}; use update_feature",
                    feature=name,
                    field="feature_name",
                )
            )
        target = Path(path) if path else self.settings.definitions_path / f"{name}.yaml"
        if not target.is_absolute():
            target = self.settings.definitions_path / target
        if target.exists():
            raise DefinitionError(DefinitionIssue("file already exists", file=target, feature=name))
        definition = definition.with_path(target)
        new_graph = self._check_graph(graph, definition)
        item = plan_feature(definition, self._registered(name))
        if not item.ok:
            raise VersionError(item.reason)
        with file_edits() as edits:
            edits.write(target, new_definition_text(definition.to_payload()))
            self._reread(target, definition)
            self.registry.register(
                [self._registration(definition, item, created_by=created_by)],
                created_by=self.user,
            )
        self._remember(new_graph, target)

    def get_feature(self, feature_name: str) -> FeatureInfo:
        """The definition's fields plus registered state, downstream features and usage.

        Raises:
            UnknownFeatureError: neither a definition nor the registry knows the name.
        """
        graph = self.graph
        rows = self.registry.feature_rows([feature_name])
        if feature_name in graph:
            definition = graph[feature_name]
            downstream = graph.downstream(feature_name)
        elif feature_name in rows:
            state = self.registry.registered_state([feature_name])[feature_name]
            definition, downstream = state.definition(), []
        else:
            raise UnknownFeatureError(feature_name, graph.names)
        return _info(definition, rows.get(feature_name), downstream)

    def list_features(
        self,
        *,
        feature_type: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        tags: Iterable[str] | None = None,
        skip: int = 0,
        limit: int | None = 100,
    ) -> list[FeatureInfo]:
        """Definitions matching every given filter, by name (``skip``/``limit`` page)."""
        graph = self.graph
        items = filter_definitions(
            graph,
            feature_type=getattr(feature_type, "value", feature_type),
            status=getattr(status, "value", status),
            owner=owner,
            tags=[tags] if isinstance(tags, str) else tags,
            skip=skip,
            limit=limit,
        )
        rows = self.registry.feature_rows([d.feature_name for d in items]) if items else {}
        return [_info(d, rows.get(d.feature_name), graph.downstream(d.feature_name)) for d in items]

    def update_feature(
        self,
        feature_name: str,
        *,
        version: str | None = None,
        changelog: str | None = None,
        created_by: str | None = None,
        allow_breaking: bool = False,
        **changes: Any,
    ) -> FeatureInfo:
        """Change fields of a feature, write its file and register the new version.

        Without ``version`` the smallest version the change requires is used. Nothing
        happens when the fields already hold these values. A breaking change used by
        production models needs ``allow_breaking=True``.
        """
        self._change(
            feature_name,
            changes,
            version=version,
            changelog=changelog,
            created_by=created_by,
            allow_breaking=allow_breaking,
            skip_unchanged=True,
        )
        return self.get_feature(feature_name)

    def create_version(
        self,
        feature_name: str,
        *,
        version: str | None = None,
        bump: str | None = None,
        changelog: str | None = None,
        breaking_changes: bool | None = None,
        created_by: str | None = None,
        allow_breaking: bool = False,
        **changes: Any,
    ) -> FeatureVersion:
        """Register a new version: ``version`` (or a ``bump`` level, or the smallest the
        change requires; a patch when nothing changed), optional field ``changes``."""
        return self._change(
            feature_name,
            changes,
            version=version,
            bump=bump,
            changelog=changelog,
            breaking_changes=breaking_changes,
            created_by=created_by,
            allow_breaking=allow_breaking,
        )

    def get_feature_versions(self, feature_name: str) -> list[FeatureVersion]:
        """Registered versions, newest first."""
        versions = self.registry.versions(feature_name)
        if not versions and feature_name not in self.graph:
            raise UnknownFeatureError(feature_name, self.graph.names)
        return versions

    def get_version(self, feature_name: str, version: str) -> FeatureVersion:
        """One registered version.

        Raises:
            VersionError: not a semantic version, or not registered for this feature.
        """
        parse_version(version, where=f"feature '{feature_name}'")
        versions = self.get_feature_versions(feature_name)
        for item in versions:
            if item.version == version:
                return item
        known = ", ".join(v.version for v in versions) or "none"
        raise VersionError(
            f"feature '{feature_name}' has no registered version {version} (registered: {known})"
        )

    def materializations(self, feature_name: str, *, limit: int = 10) -> list[MaterializationInfo]:
        """The latest recorded builds of a feature, newest first."""
        return self.registry.materializations(feature_name, limit=limit)


def _info(
    definition: FeatureDefinition, row: Mapping[str, Any] | None, downstream: list[str]
) -> FeatureInfo:
    data = definition.model_dump()
    row = row or {}
    return FeatureInfo(
        **data,
        current_version=row.get("current_version"),
        registered=bool(row),
        downstream_features=list(downstream),
        usage_count=int(row.get("usage_count") or 0),
        last_used_at=row.get("last_used_at"),
        created_at=row.get("created_at"),
        updated_at=row.get("updated_at"),
        deprecated_at=row.get("deprecated_at"),
        archived_at=row.get("archived_at"),
        definition_file=str(definition.path) if definition.path else None,
    )
