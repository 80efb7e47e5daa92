"""Change categories, required bumps and ``plan`` as plain data.

Everything here is pure: definitions and registered state in, data out. Rendering lives in
``cli.py``; reading and writing the registry lives in ``registry/store.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

import semver
from pydantic import BaseModel, Field

from featurestore_dagster.definitions.fingerprint import (
    BREAKING_FIELDS,
    DATA_FIELDS,
    METADATA_FIELDS,
    data_components,
    data_fingerprint,
    metadata_components,
    metadata_fingerprint,
)
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import (
    FeatureDefinition,
    FeatureStatus,
    TransformationType,
)
from featurestore_dagster.errors import DefinitionIssue, VersionError


class ChangeCategory(IntEnum):
    """How much a change matters, ordered: the largest field change decides."""

    NONE = 0
    METADATA = 1
    DATA = 2
    BREAKING = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def bump(self) -> str | None:
        """The semver part a change of this category must bump at least."""
        return {3: "major", 2: "minor", 1: "patch"}.get(int(self))

    @classmethod
    def parse(cls, text: str) -> ChangeCategory:
        return cls[text.upper()]


class ChangeKind(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    REMOVED = "removed"


BUMP_LEVELS = ("major", "minor", "patch")


def field_category(field: str) -> ChangeCategory:
    if field in BREAKING_FIELDS or field == "breaking_changes":
        return ChangeCategory.BREAKING
    if field in DATA_FIELDS:
        return ChangeCategory.DATA
    return ChangeCategory.METADATA


# --- versions -------------------------------------------------------------------------------


def parse_version(text: str, *, where: str = "") -> semver.Version:
    """Parse a semantic version or raise ``VersionError`` naming ``where`` (feature, file)."""
    try:
        return semver.Version.parse(str(text).strip())
    except (ValueError, TypeError):
        prefix = f"{where}: " if where else ""
        raise VersionError(
            f"{prefix}'{text}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)"
        ) from None


def bump_version(version: str, level: str) -> str:
    """``bump_version("1.2.3", "minor") == "1.3.0"`` (a pre-release is dropped)."""
    if level not in BUMP_LEVELS:
        raise VersionError(f"unknown bump level '{level}': use major, minor or patch")
    parsed = parse_version(version).replace(prerelease=None, build=None)
    return str(getattr(parsed, f"bump_{level}")())


DEV_MARK = "+dev."


def dev_version(declared: str, data_fingerprint: str) -> str:
    """The version an unregistered definition is built as: its declared version plus the
    first 8 hex digits of its data fingerprint as semver build metadata.

    Example:
        >>> dev_version("1.2.0", "3fa9c2d17e...")
        '1.2.0+dev.3fa9c2d1'
    """
    base = str(parse_version(declared).replace(build=None))
    return f"{base}{DEV_MARK}{data_fingerprint[:8]}"


def is_dev_version(version: str | None) -> bool:
    """Whether ``version`` is a ``dev_version`` (not a registered version)."""
    return bool(version) and DEV_MARK in version


def minimum_version(registered: str, category: ChangeCategory) -> str:
    """Smallest version a change of ``category`` may take above ``registered``."""
    return bump_version(registered, category.bump or "patch")


def is_at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


def version_key(version: str) -> semver.Version:
    return parse_version(version)


# --- categorizer ----------------------------------------------------------------------------


class FieldDiff(BaseModel):
    """One changed field: its dotted name, its category, and the values before and after."""

    field: str
    category: str
    old: Any = None
    new: Any = None


_RAW_FIELDS = {
    "transformation.transformation_type": lambda d: d.transformation.transformation_type.value,
    "transformation.code": lambda d: d.transformation.code,
    "transformation.parameters": lambda d: d.transformation.parameters,
    "validation_rules": lambda d: [
        r.model_dump(mode="json", exclude_none=True) for r in d.validation_rules
    ],
    "duckdb_table": lambda d: d.table_name,
    "partitions": lambda d: d.partitions.model_dump(mode="json") if d.partitions else None,
}


def _raw(definition: FeatureDefinition, field: str) -> Any:
    if field in _RAW_FIELDS:
        return _RAW_FIELDS[field](definition)
    value = getattr(definition, field)
    return value.value if isinstance(value, StrEnum) else value


def categorize(
    old: FeatureDefinition,
    new: FeatureDefinition,
    *,
    old_data_fingerprint: str | None = None,
) -> tuple[ChangeCategory, list[FieldDiff]]:
    """Category of the change from ``old`` (a registered snapshot) to ``new``, field by field.

    ``old_data_fingerprint`` (as registered) reveals a python function whose source changed
    since: the snapshot holds only the ``module:function`` reference.
    """
    old_data, new_data = data_components(old), data_components(new)
    diffs: list[FieldDiff] = []
    for field in (*BREAKING_FIELDS, *DATA_FIELDS):
        if field == "transformation.source":
            continue
        if old_data.get(field) != new_data.get(field):
            diffs.append(_diff(field, old, new))
    if (
        new.transformation.transformation_type == TransformationType.PYTHON
        and old.transformation.code.strip() == new.transformation.code.strip()
        and old_data_fingerprint is not None
        and old_data_fingerprint != data_fingerprint(old)
    ):
        # The snapshot's fingerprint was taken over the function source of that time.
        diffs.append(
            FieldDiff(
                field="transformation.source",
                category=ChangeCategory.DATA.label,
                old="(function source as registered)",
                new=new_data["transformation.source"],
            )
        )
    old_meta, new_meta = metadata_components(old), metadata_components(new)
    for field in METADATA_FIELDS:  # optional fields are left out of the components when unset
        if old_meta.get(field) != new_meta.get(field):
            diffs.append(_diff(field, old, new))
    diffs.extend(_flag_diff(old, new))
    category = max((ChangeCategory.parse(d.category) for d in diffs), default=ChangeCategory.NONE)
    return category, diffs


def _flag_diff(old: FeatureDefinition, new: FeatureDefinition) -> list[FieldDiff]:
    """``breaking_changes`` describes the version it sits on: only setting it (false in the
    registered snapshot, true now) claims a breaking change. A ``true`` kept from the
    registered version describes that version, not the next one."""
    if new.breaking_changes and not old.breaking_changes:
        return [
            FieldDiff(
                field="breaking_changes",
                category=ChangeCategory.BREAKING.label,
                old=False,
                new=True,
            )
        ]
    return []


def _diff(field: str, old: FeatureDefinition, new: FeatureDefinition) -> FieldDiff:
    return FieldDiff(
        field=field,
        category=field_category(field).label,
        old=_raw(old, field),
        new=_raw(new, field),
    )


# --- plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredFeature:
    """What the registry holds for one feature: its state and its current (latest) version."""

    feature_name: str
    status: str
    current_version: str
    snapshot: dict[str, Any]
    data_fingerprint: str
    metadata_fingerprint: str

    def definition(self) -> FeatureDefinition:
        return FeatureDefinition.model_validate(self.snapshot)


class ModelUsage(BaseModel):
    """A model that used a feature in production within the impact window."""

    used_by_model: str
    model_version: str
    feature_name: str
    last_used_at: datetime | None = None


class FeaturePlan(BaseModel):
    """What ``apply`` would do for one feature."""

    feature_name: str
    change: ChangeKind
    category: str | None = None
    diffs: list[FieldDiff] = Field(default_factory=list)
    registered_version: str | None = None
    declared_version: str | None = None
    required_bump: str | None = None
    minimum_version: str | None = None
    ok: bool = True
    reason: str | None = None
    note: str | None = None
    downstream_features: list[str] = Field(default_factory=list)
    production_models: list[ModelUsage] = Field(default_factory=list)
    needs_consent: bool = False
    status: str | None = None
    definition_file: str | None = None
    data_fingerprint: str | None = None
    metadata_fingerprint: str | None = None

    @property
    def pending(self) -> bool:
        return self.change != ChangeKind.UNCHANGED


class Plan(BaseModel):
    """Every feature compared with the registry, in the graph's build order."""

    features: list[FeaturePlan]
    window_days: int = 90

    @property
    def pending(self) -> list[FeaturePlan]:
        return [f for f in self.features if f.pending]

    @property
    def refused(self) -> list[FeaturePlan]:
        return [f for f in self.features if not f.ok]

    @property
    def needing_consent(self) -> list[FeaturePlan]:
        return [f for f in self.features if f.needs_consent]

    def __getitem__(self, name: str) -> FeaturePlan:
        for item in self.features:
            if item.feature_name == name:
                return item
        raise KeyError(name)


def plan_feature(
    definition: FeatureDefinition,
    registered: RegisteredFeature | None,
    fingerprint: Callable[[FeatureDefinition], str] = data_fingerprint,
) -> FeaturePlan:
    """Compare one definition with what is registered for it.

    ``fingerprint`` gives the definition's data fingerprint (``FeatureGraph.data_fingerprint``
    computes it once per load); it is not called when the registered snapshot proves it.
    """
    declared = definition.version
    base = {
        "feature_name": definition.feature_name,
        "declared_version": declared,
        "status": definition.status.value,
        "definition_file": str(definition.path) if definition.path is not None else None,
    }
    if registered is None:
        data_fp, meta_fp = fingerprint(definition), metadata_fingerprint(definition)
        return FeaturePlan(
            change=ChangeKind.NEW, data_fingerprint=data_fp, metadata_fingerprint=meta_fp, **base
        )
    base["registered_version"] = registered.current_version
    if _same_as_snapshot(definition, registered):
        # Fast path: identical declared payload, so identical SQL; only python can drift.
        return FeaturePlan(
            change=ChangeKind.UNCHANGED,
            category=ChangeCategory.NONE.label,
            data_fingerprint=registered.data_fingerprint,
            metadata_fingerprint=registered.metadata_fingerprint,
            **base,
        )
    data_fp, meta_fp = fingerprint(definition), metadata_fingerprint(definition)
    base.update(data_fingerprint=data_fp, metadata_fingerprint=meta_fp)
    if (data_fp, meta_fp) == (registered.data_fingerprint, registered.metadata_fingerprint):
        diffs = _flag_diff(registered.definition(), definition)
        category = ChangeCategory.BREAKING if diffs else ChangeCategory.NONE
    else:
        category, diffs = categorize(
            registered.definition(), definition, old_data_fingerprint=registered.data_fingerprint
        )
    if category == ChangeCategory.NONE and declared == registered.current_version:
        return FeaturePlan(change=ChangeKind.UNCHANGED, category=category.label, **base)
    minimum = minimum_version(registered.current_version, category)
    ok, reason = True, None
    if not is_at_least(declared, minimum):
        ok = False
        reason = version_refusal(
            definition.feature_name,
            declared,
            registered.current_version,
            category,
            minimum,
            definition.path,
        )
    note = None
    if [d.field for d in diffs] == ["breaking_changes"]:
        note = (
            f"only breaking_changes changed: setting it to true marks this version breaking"
            f" (a major bump over {registered.current_version}); remove it if nothing broke"
        )
        if reason:
            reason += f" ({note})"
    return FeaturePlan(
        change=ChangeKind.CHANGED,
        category=category.label,
        diffs=diffs,
        note=note,
        required_bump=category.bump,
        minimum_version=minimum,
        ok=ok,
        reason=reason,
        **base,
    )


def version_refusal(
    name: str,
    declared: str,
    registered: str,
    category: ChangeCategory,
    minimum: str,
    file: Any = None,
) -> str:
    """The message for a declared version too small for the change (names file, feature,
    field and the smallest valid version)."""
    if category == ChangeCategory.NONE:
        need = f"a new version must be above the registered {registered}"
    else:
        need = f"a {category.label} change needs at least a {category.bump} bump over {registered}"
    fix = f"run `featurestore bump {name}` (it writes version {minimum})"
    if declared == registered:
        head = f"version {declared} is registered and immutable"
    elif _older(declared, registered):
        # Typically an older file checked out again after a newer version was applied.
        head = (
            f"version {declared} is too small: the registered version is already {registered}"
            " (an older definition file checked out?)"
        )
        fix += f", or `featurestore rollback {name} --to {declared}` to go back to {declared}"
    else:
        head = f"version {declared} is too small"
    message = f"{head}; {need}: use version {minimum}; {fix}"
    return str(DefinitionIssue(message, file=file, feature=name, field="version"))


def _older(declared: str, registered: str) -> bool:
    try:
        return parse_version(declared) < parse_version(registered)
    except VersionError:
        return False


def _same_as_snapshot(definition: FeatureDefinition, registered: RegisteredFeature) -> bool:
    if definition.transformation.transformation_type == TransformationType.PYTHON:
        return False  # the function source is outside the snapshot
    return definition.to_payload() == registered.snapshot


def build_plan(
    graph: FeatureGraph,
    registered: Mapping[str, RegisteredFeature],
    *,
    production_usage: Callable[[set[str]], Iterable[ModelUsage]] | None = None,
    window_days: int = 90,
) -> Plan:
    """Compare every definition of ``graph`` with the registry.

    Args:
        graph: the validated definitions.
        registered: feature name -> registered state (features missing here are new).
        production_usage: called once with every feature a breaking change affects; returns
            the production usage of those within the impact window.
        window_days: the impact window, reported with the plan.
    """
    features = [
        plan_feature(d, registered.get(d.feature_name), graph.data_fingerprint_of) for d in graph
    ]
    for item in features:  # an unchanged payload proved its fingerprint: remember it
        if item.data_fingerprint:
            graph.data_fingerprints.setdefault(item.feature_name, item.data_fingerprint)
    for item in features:
        if item.change == ChangeKind.CHANGED:
            item.downstream_features = sorted(graph.downstream_closure(item.feature_name))
    for name in sorted(set(registered) - set(graph.names)):
        state = registered[name]
        if state.status != FeatureStatus.ARCHIVED.value:
            features.append(
                FeaturePlan(
                    feature_name=name,
                    change=ChangeKind.REMOVED,
                    registered_version=state.current_version,
                    status=state.status,
                    reason=None,
                )
            )
    _attach_impact(features, production_usage)
    return Plan(features=features, window_days=window_days)


def _attach_impact(
    features: list[FeaturePlan],
    production_usage: Callable[[set[str]], Iterable[ModelUsage]] | None,
) -> None:
    breaking = [f for f in features if f.category == ChangeCategory.BREAKING.label]
    if not breaking or production_usage is None:
        return
    affected = {n for f in breaking for n in (f.feature_name, *f.downstream_features)}
    by_feature: dict[str, list[ModelUsage]] = {}
    for usage in production_usage(affected):
        by_feature.setdefault(usage.feature_name, []).append(usage)
    for item in breaking:
        models = [
            u for n in (item.feature_name, *item.downstream_features) for u in by_feature.get(n, [])
        ]
        item.production_models = sorted(
            models, key=lambda u: (u.used_by_model, u.model_version, u.feature_name)
        )
        item.needs_consent = bool(models)


def model_names(usages: Iterable[ModelUsage]) -> list[str]:
    """``model@version`` of each distinct model, sorted."""
    return sorted({f"{u.used_by_model}@{u.model_version}" for u in usages})
