"""What a training set was made of: requests parsed, features resolved, the manifest.

A manifest is plain JSON-able data (``TrainingSetManifest.model_dump(mode="json")``): each
feature's resolved version, data fingerprint and lake snapshot id, the TTLs, the spine's row
count and content hash, and the time. Given the same spine, it pins every read to a snapshot,
so the table can be rebuilt exactly, whatever was published since.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from featurestore_dagster.definitions.models import NAME_PATTERN, parse_duration
from featurestore_dagster.errors import TrainingSetError

MANIFEST_FORMAT = 1
_REQUEST = re.compile(r"^\s*([^@\s]+)\s*(?:@\s*(\S+))?\s*$")
_MAJOR = re.compile(r"^\d+$")
_FULL = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$")


@dataclass(frozen=True)
class FeatureRequest:
    """``name`` (the live table), ``name@1.2.0`` (that version) or ``name@1`` (major 1)."""

    text: str
    feature_name: str
    version: str | None = None

    @property
    def is_major(self) -> bool:
        return self.version is not None and bool(_MAJOR.match(self.version))


def parse_requests(features: Iterable[str] | str) -> list[FeatureRequest]:
    """Parse and check the requested names (all problems reported together).

    Raises:
        TrainingSetError: no features, a malformed name or version, a name asked twice.
    """
    if isinstance(features, str):
        features = [part for part in features.split(",")]
    items = list(features)
    if not items:
        raise TrainingSetError("no features requested: name at least one")
    problems = []
    requests = []
    for item in items:
        match = _REQUEST.match(str(item)) if isinstance(item, str) else None
        if match is None:
            problems.append(f"{item!r} is not 'name', 'name@1.2.0' or 'name@1'")
            continue
        name, version = match.group(1), match.group(2)
        if not re.match(NAME_PATTERN, name):
            problems.append(f"{item!r}: '{name}' is not a feature name")
            continue
        if version is not None and not (_MAJOR.match(version) or _FULL.match(version)):
            problems.append(
                f"{item!r}: '{version}' is neither a version (1.2.0) nor a major line (1)"
            )
            continue
        requests.append(FeatureRequest(f"{name}@{version}" if version else name, name, version))
    seen: dict[str, int] = {}
    for request in requests:
        seen[request.text] = seen.get(request.text, 0) + 1
    repeated = sorted(text for text, count in seen.items() if count > 1)
    if repeated:
        problems.append(f"requested more than once: {', '.join(repeated)}")
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise TrainingSetError(f"training set refused, nothing computed:\n{body}")
    return requests


def version_suffix(version: str) -> str:
    """``1.2.0`` -> ``v1_2_0`` (column names of two versions of one feature)."""
    return "v" + re.sub(r"[^0-9A-Za-z]+", "_", version).strip("_")


def ttl_seconds(ttl: Any, where: str) -> float | None:
    """A TTL (``"30d"``, seconds, a ``timedelta``) in seconds; None for no limit."""
    if ttl is None:
        return None
    if hasattr(ttl, "total_seconds"):
        seconds = float(ttl.total_seconds())
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    elif isinstance(ttl, str):
        try:
            seconds = parse_duration(ttl)
        except ValueError:
            raise TrainingSetError(
                f"{where}: '{ttl}' is not a duration like '30d', '36h', '90m', '2w'"
            ) from None
    else:
        raise TrainingSetError(f"{where}: a TTL must be a duration like '30d', got {ttl!r}")
    if not seconds > 0:
        raise TrainingSetError(f"{where}: a TTL must be positive, got {ttl!r}")
    return seconds


class ManifestFeature(BaseModel):
    """One resolved feature of a training set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request: str
    feature_name: str
    column: str
    version: str
    data_fingerprint: str | None = None
    snapshot_id: int | None = None
    table: str
    entity_columns: list[str] = Field(default_factory=list)
    timestamp_column: str
    ttl: str | None = None
    ttl_seconds: float | None = None
    lookahead: bool = False


class SpineSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    row_count: int
    content_hash: str
    timestamp_column: str
    columns: list[str]


class TrainingSetManifest(BaseModel):
    """Everything needed to rebuild a training set from the same spine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = MANIFEST_FORMAT
    training_set_id: str
    created_at: datetime
    features: list[ManifestFeature]
    ttl: str | None = None
    spine: SpineSummary
    lake_snapshot_id: int | None = None
    allow_lookahead: bool = False
    model: str | None = None
    model_version: str | None = None
    environment: str | None = None
    # The run that built it (a Dagster run id): its usage records carry it as execution_id.
    execution_id: str | None = None
    label_column: str | None = None
    correlations: dict[str, float | None] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def snapshot_ids(self) -> set[int]:
        return {f.snapshot_id for f in self.features if f.snapshot_id is not None}


def new_training_set_id() -> str:
    """``ts_`` + UTC time + random suffix: sortable by creation, unique across processes."""
    return "ts_" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "_" + uuid.uuid4().hex[:10]


def parse_manifest(data: Any) -> TrainingSetManifest:
    """A manifest from a dict (or a ``TrainingSetManifest``).

    Raises:
        TrainingSetError: not a manifest this version can read.
    """
    if isinstance(data, TrainingSetManifest):
        return data
    if not isinstance(data, dict):
        raise TrainingSetError(
            f"a manifest is a dict or a training set id, got {type(data).__name__}"
        )
    if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
        raise TrainingSetError(f"manifest format {data.get('format')!r} is not supported")
    try:
        return TrainingSetManifest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TrainingSetError(f"not a training-set manifest: {where}: {first['msg']}") from None


def column_names(requests: Sequence[FeatureRequest], versions: Sequence[str]) -> list[str]:
    """Output column per request: the feature's name, or ``name__v1_2_0`` when two versions
    of one feature are asked for.

    Raises:
        TrainingSetError: two requests of one feature resolve to the same version.
    """
    counts: dict[str, int] = {}
    for request in requests:
        counts[request.feature_name] = counts.get(request.feature_name, 0) + 1
    names = []
    for request, version in zip(requests, versions, strict=True):
        if counts[request.feature_name] > 1:
            names.append(f"{request.feature_name}__{version_suffix(version)}")
        else:
            names.append(request.feature_name)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        detail = "; ".join(
            f"{', '.join(r.text for r, n in zip(requests, names, strict=True) if n == d)}"
            f" all resolve to {d}"
            for d in duplicated
        )
        raise TrainingSetError(f"training set refused, nothing computed: {detail}")
    return names
