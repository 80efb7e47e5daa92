"""What a build reports for each feature: its status, check outcomes, profile, snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from featurestore_dagster.build.checks import CheckOutcome, TableProfile


class BuildStatus(StrEnum):
    PUBLISHED = "published"  # every blocking check passed; the live table was replaced
    CHECKED = "checked"  # every blocking check passed; discarded unpublished (check)
    REJECTED = "rejected"  # a blocking check failed; live table kept, rows in _rejected
    FAILED = "failed"  # the transformation could not run
    SKIPPED = "skipped"  # an upstream was rejected, failed or skipped in this run


@dataclass
class FeatureBuild:
    """What happened to one feature in one run."""

    feature_name: str
    version: str
    table: str
    status: BuildStatus
    rows: int | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    profile: TableProfile | None = None
    seconds: float = 0.0
    error: str | None = None
    rejected_table: str | None = None
    window: str | None = None  # a partition run: the window built, audited and replaced
    snapshot_id: int | None = None  # the lake snapshot of the publish (or the rejection)
    discarded: bool = False  # built and audited by ``check``, never written to the lake

    @property
    def checks_passed(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    @property
    def checks_failed(self) -> int:
        return sum(1 for c in self.checks if not c.passed)

    @property
    def failed_blocking(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.blocking and not c.passed]

    @property
    def ok(self) -> bool:
        return self.status in (BuildStatus.PUBLISHED, BuildStatus.CHECKED)
