"""Typed errors. Library code raises these; only ``cli.py`` turns them into messages and exit
codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FeatureStoreError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 2


@dataclass(frozen=True)
class DefinitionIssue:
    """One problem found in a definition: where it is and what is wrong.

    Args:
        message: what is wrong and, where possible, how to fix it.
        file: the definition file (None for definitions created in code).
        feature: the feature name, when it could be read.
        field: dotted path of the offending field (``validation_rules[0].parameters.min``).
    """

    message: str
    file: Path | str | None = None
    feature: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.feature:
            where.append(f"feature '{self.feature}'")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class DefinitionError(FeatureStoreError):
    """One or more definitions are invalid. ``issues`` lists every problem found in the load."""

    def __init__(self, issues: list[DefinitionIssue] | DefinitionIssue | str):
        if isinstance(issues, str):
            issues = [DefinitionIssue(issues)]
        elif isinstance(issues, DefinitionIssue):
            issues = [issues]
        self.issues = list(issues)
        count = len(self.issues)
        head = (
            "invalid feature definition" if count == 1 else f"{count} invalid feature definitions"
        )
        body = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"{head}:\n{body}")


class UnknownFeatureError(FeatureStoreError):
    """A feature name that no definition (or registry row) holds."""

    def __init__(self, name: str, known: list[str] | None = None):
        self.name = name
        hint = ""
        if known:
            import difflib

            close = difflib.get_close_matches(name, known, n=3)
            if close:
                hint = f" Did you mean: {', '.join(close)}?"
        super().__init__(f"unknown feature '{name}'.{hint}")


class TransitionError(FeatureStoreError):
    """A refused status change, version change or rollback."""


class VersionError(FeatureStoreError):
    """A version string or bump that the versioning rules refuse."""


class RegistryError(FeatureStoreError):
    """The registry database cannot be reached or holds something inconsistent."""


class UsageError(FeatureStoreError):
    """A usage record that is refused (unknown version, NaN, out-of-range values)."""


class MaterializationError(FeatureStoreError):
    """A build that could not run (missing source table, SQL error, wrong output)."""

    exit_code = 1


class PartitionError(FeatureStoreError):
    """A partition key or range that the feature's partitions do not hold (exit 2)."""


class BreakingChangeError(FeatureStoreError):
    """A breaking change used by production models, applied without explicit consent."""


class TrainingSetError(FeatureStoreError):
    """A training-set or latest-values request that is refused before anything is computed
    (unknown feature or version, data no longer retained, a spine that does not fit)."""


class LookaheadError(TrainingSetError):
    """A feature whose transformation can see the future, asked for without
    ``allow_lookahead=True``."""


class ProjectNotFoundError(FeatureStoreError):
    """Run outside any featurestore project (no root found by walking up)."""


class ConfigError(FeatureStoreError):
    """Settings that cannot be used: a missing definitions folder, a bad URL or DAGSTER_HOME."""


class InvalidArgumentError(FeatureStoreError):
    """An argument outside its allowed values (``list --feature-type bogus``)."""


class UnregisteredBuildError(FeatureStoreError):
    """A registered-only build asked to build a definition that is not a registered version."""


class LakeError(FeatureStoreError):
    """The lake cannot be used: its catalog cannot be reached, its data path is not writable,
    or a table, version or snapshot asked for is not there."""
