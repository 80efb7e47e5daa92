"""Operations that change a definition: field updates, new versions, lifecycle, rollback.

A mixin of ``FeatureStore``. Every change goes through ``_change``: build the new definition,
categorize it against the registered version, pick or check the version, validate the whole
graph with it, edit the file in place (ruamel round-trip) and register, restoring the file if
registering fails.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.loader import read_definition_file, validation_issues
from featurestore_dagster.definitions.models import FeatureDefinition, FeatureStatus
from featurestore_dagster.errors import (
    BreakingChangeError,
    DefinitionError,
    DefinitionIssue,
    TransitionError,
    VersionError,
)
from featurestore_dagster.models import FeatureInfo, FeatureVersion
from featurestore_dagster.versioning.editing import DefinitionFile, definitions_lock, file_edits
from featurestore_dagster.versioning.journal import Journal, PendingRegistration
from featurestore_dagster.versioning.plan import (
    ChangeCategory,
    ChangeKind,
    bump_version,
    categorize,
    is_at_least,
    minimum_version,
    model_names,
    parse_version,
    plan_feature,
    version_key,
    version_refusal,
)

# What a rollback restores from the old snapshot: the transformation, the validation rules
# and the typed schema (with the inputs the SQL reads, so the result is a valid definition).
RESTORED_FIELDS = (
    "data_type",
    "entity_columns",
    "timestamp_column",
    "upstream_features",
    "sources",
    "transformation",
    "validation_rules",
    "duckdb_table",
)
# operation -> (statuses it is allowed from, status it sets).
TRANSITIONS = {
    "activate": ({"draft"}, "active"),
    "deprecate": ({"active"}, "deprecated"),
    "archive": ({"draft", "active", "deprecated"}, "archived"),
}


def blocking_downstream(graph: FeatureGraph, name: str, operation: str) -> tuple[list[str], str]:
    """Downstream features that forbid ``operation`` on ``name``, and what makes them block.

    ``deprecate`` is refused while active downstream features exist, ``archive`` while any
    non-archived one does; ``activate`` has no downstream guard.
    """
    if operation == "deprecate":
        return sorted(
            n for n in graph.downstream_closure(name) if graph[n].status == FeatureStatus.ACTIVE
        ), "active"
    if operation == "archive":
        return sorted(
            n for n in graph.downstream_closure(name) if graph[n].status != FeatureStatus.ARCHIVED
        ), "non-archived"
    return [], ""


DEFAULT_WINDOW_DAYS = 90


def impact_window_days(settings: Settings) -> int:
    """``[tool.featurestore] impact_window_days`` of the project, else 90."""
    path = settings.project_root / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("featurestore", {})
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_WINDOW_DAYS
    return int(table.get("impact_window_days", DEFAULT_WINDOW_DAYS))


class DefinitionChanges:
    """Changing definitions: the host (``FeatureStore``) provides ``graph``, ``registry``,
    ``settings``, ``user``, ``get_feature``, ``get_version`` and ``_registration``."""

    # --- lifecycle ----------------------------------------------------------------------------

    def activate_feature(self, feature_name: str, **kwargs: Any) -> FeatureInfo:
        """draft -> active."""
        return self._transition(feature_name, "activate", **kwargs)

    def deprecate_feature(self, feature_name: str, **kwargs: Any) -> FeatureInfo:
        """active -> deprecated; refused while active downstream features exist."""
        return self._transition(feature_name, "deprecate", **kwargs)

    def delete_feature(self, feature_name: str, **kwargs: Any) -> FeatureInfo:
        """Soft delete: archive (history stays); refused while non-archived downstream exist."""
        return self._transition(feature_name, "archive", **kwargs)

    archive_feature = delete_feature

    def _transition(
        self,
        feature_name: str,
        operation: str,
        *,
        changelog: str | None = None,
        created_by: str | None = None,
    ) -> FeatureInfo:
        graph = self.graph
        definition = graph[feature_name]
        allowed, target = TRANSITIONS[operation]
        current = definition.status.value
        if current not in allowed:
            raise TransitionError(
                f"feature '{feature_name}' is {current}: cannot {operation} it (allowed from"
                f" {', '.join(sorted(allowed))}); file {definition.path}"
            )
        blocking, what = blocking_downstream(graph, feature_name, operation)
        if blocking:
            raise TransitionError(
                f"cannot {operation} feature '{feature_name}': {what} downstream feature(s)"
                f" {', '.join(blocking)} depend on it; {operation} or change those first"
            )
        self._change(
            feature_name,
            {"status": target},
            changelog=changelog or f"Status {current} -> {target}",
            created_by=created_by,
            event={"activate": "activated", "deprecate": "deprecated"}.get(operation, "archived"),
        )
        return self.get_feature(feature_name)

    # --- rollback -----------------------------------------------------------------------------

    def rollback_version(
        self,
        feature_name: str,
        version: str | None = None,
        *,
        to_version: str | None = None,
        changelog: str | None = None,
        created_by: str | None = None,
        allow_breaking: bool = False,
    ) -> FeatureVersion:
        """Restore version ``version``'s transformation, rules and typed schema as a new
        version above every registered one; mark the versions it undoes rolled back.

        Raises:
            VersionError: ``version`` is not registered for this feature.
            TransitionError: nothing to restore, unregistered changes, an archived feature.
        """
        target = to_version or version
        if not target:
            raise VersionError("rollback needs the version to restore (to_version)")
        old = self.get_version(feature_name, target)
        if self.graph[feature_name].status == FeatureStatus.ARCHIVED:
            raise TransitionError(
                f"feature '{feature_name}' is archived: it cannot be rolled back (its history"
                " stays readable)"
            )
        versions = self.registry.versions(feature_name)
        undone = [
            v.version
            for v in versions
            if version_key(v.version) > version_key(target) and not v.is_rolled_back
        ]
        changes = {field: old.snapshot.get(field) for field in RESTORED_FIELDS}
        if changelog and target in changelog:
            text = changelog
        else:
            text = f"Rollback to {target}" + (f": {changelog}" if changelog else "")
        return self._change(
            feature_name,
            changes,
            changelog=text,
            created_by=created_by,
            event="rolled_back",
            restored_from=target,
            rolls_back=undone,
            allow_breaking=allow_breaking,
            nothing_message=(
                f"feature '{feature_name}': version {target} has the same transformation,"
                " validation rules and schema as the current version; nothing to roll back"
            ),
        )

    # --- the one write path -------------------------------------------------------------------

    def _change(self, feature_name: str, changes: Mapping[str, Any], **options: Any):
        """Edit one feature's file and register the result, holding the definitions lock
        (the graph is re-read inside it, so a concurrent edit is seen, not overwritten)."""
        with definitions_lock(self._lock_path()):
            return self._change_locked(feature_name, changes, **options)

    def _change_locked(
        self,
        feature_name: str,
        changes: Mapping[str, Any],
        *,
        version: str | None = None,
        bump: str | None = None,
        changelog: str | None = None,
        breaking_changes: bool | None = None,
        created_by: str | None = None,
        event: str = "registered",
        restored_from: str | None = None,
        rolls_back: list[str] | None = None,
        skip_unchanged: bool = False,
        nothing_message: str | None = None,
        allow_breaking: bool = False,
    ) -> FeatureVersion:
        """Edit one feature's file and register the result; restore the file on failure."""
        interrupted = self._finish_interrupted(feature_name)
        if interrupted is not None and restored_from is not None:
            if (interrupted.event, interrupted.restored_from) == (event, restored_from):
                return self.get_version(feature_name, interrupted.version)  # a retried rollback
        graph = self.graph
        definition = graph[feature_name]
        where = f"feature '{feature_name}' ({definition.path})"
        if version is not None:
            parse_version(version, where=where)
        registered = self._registered(feature_name)
        if registered is not None:
            pending = plan_feature(definition, registered)
            if pending.change != ChangeKind.UNCHANGED:
                raise TransitionError(
                    f"{where} has unregistered changes (version {definition.version} vs"
                    f" registered {registered.current_version}); run `featurestore apply` or"
                    " revert the file first"
                )
        payload = definition.to_payload()
        for key, value in changes.items():
            value = _plain(value)
            if key == "transformation" and isinstance(value, Mapping):
                # Fields of the transformation not given are kept (parameters alone, say).
                value = {**payload["transformation"], **value}
            payload[key] = value
        payload = {k: v for k, v in payload.items() if v is not None}
        payload["breaking_changes"] = False
        candidate = self._validate(payload, file=definition.path)
        if registered is None:
            category, diffs = ChangeCategory.NONE, []
            base = None
        else:
            category, diffs = categorize(
                registered.definition(), candidate, old_data_fingerprint=registered.data_fingerprint
            )
            base = registered.current_version
        if category == ChangeCategory.NONE and nothing_message:
            raise TransitionError(nothing_message)
        if breaking_changes:
            category = ChangeCategory.BREAKING
        if skip_unchanged and not diffs and version is None and registered is not None:
            return self.registry.versions(feature_name)[0]
        version = self._next_version(feature_name, base, category, version, bump, definition)
        if category == ChangeCategory.BREAKING and registered is not None and not allow_breaking:
            self._refuse_breaking(graph, feature_name, base, version)
        summary = ", ".join(sorted({d.field for d in diffs})) or "no field"
        payload.update(
            version=version,
            changelog=changelog or f"Changed {summary}",
            breaking_changes=category == ChangeCategory.BREAKING,
        )
        new = self._validate(payload, file=definition.path).with_path(definition.path)
        new_graph = self._check_graph(graph, new)
        item = plan_feature(new, registered)
        document = DefinitionFile(definition.path)
        written = {k: payload.get(k) for k in set(payload) | set(definition.to_payload())}
        old_payload = definition.to_payload()
        document.set_fields(
            feature_name, {k: v for k, v in written.items() if old_payload.get(k) != v}
        )
        registration = self._registration(
            new,
            item,
            created_by=created_by,
            event=event,
            restored_from=restored_from,
            rolls_back=rolls_back or [],
        )
        registration.change_category = "initial" if registered is None else category.label
        journal = self._journal()
        journal.write_or_refuse(
            PendingRegistration(
                feature_name=feature_name,
                version=version,
                snapshot=new.to_payload(),
                change_category=registration.change_category,
                event=event,
                restored_from=restored_from,
                rolls_back=list(rolls_back or []),
                created_by=registration.created_by,
            )
        )
        try:
            with file_edits() as edits:
                edits.write(definition.path, document.render())
                self._reread(definition.path, new)
                self.registry.register([registration], created_by=self.user)
        except BaseException:
            journal.clear(feature_name)  # the file was put back: nothing is pending
            raise
        journal.clear(feature_name)
        self._remember(new_graph, definition.path)
        return self.get_version(feature_name, version)

    # --- recovery of an interrupted change (see versioning/journal.py) -----------------------

    def _journal(self) -> Journal:
        return Journal(self.settings.cache_path.parent / "pending")

    def _finish_interrupted(self, feature_name: str) -> PendingRegistration | None:
        """Complete the registration of a change whose file was written by a process that
        died before the registry committed; return that change (None when there is none)."""
        journal = self._journal()
        pending = journal.read(feature_name)
        if pending is None:
            return None
        registered = self._registered(feature_name)
        if registered is not None and registered.current_version == pending.version:
            journal.clear(feature_name)  # it was committed; only the cleanup was lost
            return pending
        definition = self.graph[feature_name]
        item = plan_feature(definition, registered)
        if not pending.matches(definition.to_payload()) or item.change == ChangeKind.UNCHANGED:
            journal.clear(feature_name)  # never written, or edited since: not ours to register
            return None
        registration = self._registration(definition, item, **pending.extras())
        registration.change_category = pending.change_category
        self.registry.register([registration], created_by=self.user)
        journal.clear(feature_name)
        self.reload()
        return pending

    def interrupted_extras(self, definition: FeatureDefinition) -> dict[str, Any]:
        """For ``apply``: the facts of an interrupted change whose file holds ``definition``
        (so it is registered as the rollback it was, with ``restored_from``), else ``{}``."""
        pending = self._journal().read(definition.feature_name)
        if pending is None or not pending.matches(definition.to_payload()):
            return {}
        return pending.extras()

    def _refuse_breaking(self, graph: FeatureGraph, name: str, old: str, new: str) -> None:
        window = impact_window_days(self.settings)
        affected = graph.downstream_closure(name)
        usage = self.registry.production_usage(affected | {name}, window_days=window)
        if usage:
            raise BreakingChangeError(
                f"feature '{name}': breaking change ({old} -> {new}) affects"
                f" {', '.join(sorted(affected)) or 'no downstream features'} and production"
                f" model(s) {', '.join(model_names(usage))} used within {window} days; pass"
                " allow_breaking=True (--allow-breaking) to register it anyway"
            )

    def _next_version(
        self,
        name: str,
        base: str | None,
        category: ChangeCategory,
        version: str | None,
        bump: str | None,
        definition: FeatureDefinition,
    ) -> str:
        if base is None:  # never registered: its declared (or the given) version
            if bump:
                return bump_version(version or definition.version, bump)
            return version or definition.version
        minimum = minimum_version(base, category)
        if version is None:
            version = bump_version(base, bump) if bump else minimum
        if not is_at_least(version, minimum):
            raise VersionError(
                version_refusal(name, version, base, category, minimum, definition.path)
            )
        return version

    def _validate(self, payload: dict[str, Any], *, file: Path | None) -> FeatureDefinition:
        name = payload.get("feature_name")
        try:
            return FeatureDefinition.model_validate(payload)
        except ValidationError as error:
            raise DefinitionError(
                validation_issues(error, file=file, feature=name if isinstance(name, str) else None)
            ) from None

    def _check_graph(self, graph: FeatureGraph, definition: FeatureDefinition) -> FeatureGraph:
        """The graph with ``definition`` in place, validated as a whole (cached SQL
        references make this cheap for the features that did not change)."""
        others = [d for d in graph if d.feature_name != definition.feature_name]
        candidate = FeatureGraph([*others, definition])
        issues = candidate.validate(cache=self._load_cache())
        if issues:
            raise DefinitionError(issues)
        return candidate

    def _reread(self, path: Path, expected: FeatureDefinition) -> None:
        """The written file must load back to exactly the definition registered."""
        entries, issues = read_definition_file(path)
        if issues:
            raise DefinitionError(issues)
        found = next((d for n, d in entries if n == expected.feature_name), None)
        if found is None or found.to_payload() != expected.to_payload():
            raise DefinitionError(
                DefinitionIssue(
                    "the edited file does not load back to the intended definition; restored",
                    file=path,
                    feature=expected.feature_name,
                )
            )


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return getattr(value, "value", value) if not isinstance(value, str) else value
