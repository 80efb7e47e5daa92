"""Data and metadata fingerprints of a definition (SQLMesh's split of a snapshot's identity).

The **data** fingerprint covers everything that changes the rows a feature produces: the
transformation (SQL normalized with sqlglot, so whitespace, comments and keyword case do not
count; for python, the function's source), its parameters, the typed schema, upstream set,
sources, validation rules and the table. The **metadata** fingerprint covers what only
describes it: description, owner, tags, schedule, status, feature type.

A feature's code version follows its data fingerprint, so a metadata edit never makes an asset
stale, and a rollback to older data returns the older code version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlglot

from featurestore_dagster.definitions.models import FeatureDefinition, TransformationType
from featurestore_dagster.definitions.sql import (
    PARAMETER_PATTERN,
    SqlError,
    normalize_sql,
    substitute_parameters,
)

# Fields compared by the categorizer, with how a change to each is classified.
BREAKING_FIELDS = ("data_type", "entity_columns", "timestamp_column")
DATA_FIELDS = (
    "transformation.transformation_type",
    "transformation.code",
    "transformation.parameters",
    "transformation.source",
    "upstream_features",
    "sources",
    "validation_rules",
    "duckdb_table",
    "partitions",
)
METADATA_FIELDS = (
    "description",
    "owner",
    "tags",
    "schedule",
    "status",
    "feature_type",
    "automation",
    "ttl",
    "lookahead",
)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalized_code(definition: FeatureDefinition) -> str:
    """The transformation code in canonical form.

    SQL: ``{{ name }}`` placeholders become ``$name`` so the template itself parses, then
    sqlglot rewrites it without comments and with canonical spacing and keyword case. A
    template that only parses once rendered is normalized rendered; one that never parses
    (the graph reports it) is compared with collapsed whitespace. Python: the reference.
    """
    transformation = definition.transformation
    code = transformation.code
    if transformation.transformation_type != TransformationType.SQL:
        return code.strip()
    key = _digest([code, transformation.parameters])
    _MEMO_USED.add(key)
    cached = _MEMO.get(key)
    if cached is None:
        cached = _MEMO[key] = _normalize_template(code, transformation.parameters)
        _MEMO_STATE["dirty"] = True
    return cached


def _normalize_template(code: str, parameters: dict[str, Any]) -> str:
    try:
        return normalize_sql(PARAMETER_PATTERN.sub(lambda m: f"${m.group(1)}", code))
    except SqlError:
        pass
    try:
        return normalize_sql(substitute_parameters(code, parameters))
    except SqlError:
        return " ".join(code.split())


# Normalized SQL by hash of (code, parameters): parsing is most of a fingerprint's cost, and
# the answer depends only on the text and the sqlglot version (part of the file's version).
_MEMO: dict[str, str] = {}
_MEMO_STATE = {"dirty": False}
_MEMO_USED: set[str] = set()
_MEMO_VERSION = f"1|sqlglot={sqlglot.__version__}"


@contextmanager
def normalization_cache(path: Path | None) -> Iterator[None]:
    """Reuse normalized SQL from ``path`` inside the block; afterwards, when something was
    normalized anew, save the entries the block used (so stale ones drop out).

    An unreadable or unwritable file only means normalizing again.
    """
    _MEMO_USED.clear()
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
            if data.get("version") == _MEMO_VERSION:
                _MEMO.update(data["entries"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    try:
        yield
    finally:
        if path is not None and _MEMO_STATE["dirty"]:
            _save_memo(Path(path))


def _save_memo(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w") as stream:
            entries = {k: v for k, v in _MEMO.items() if k in _MEMO_USED}
            json.dump({"version": _MEMO_VERSION, "entries": entries}, stream)
        os.replace(temporary, path)
        _MEMO_STATE["dirty"] = False
    except OSError:
        pass


def python_source(definition: FeatureDefinition) -> str | None:
    """Source text of a python transformation's function (None for SQL or when it cannot be
    read; the graph reports references that do not import)."""
    if definition.transformation.transformation_type != TransformationType.PYTHON:
        return None
    from featurestore_dagster.build.transformations import PythonImportError, function_source

    try:
        return function_source(definition.transformation.code)
    except PythonImportError:
        return None


def _rules(definition: FeatureDefinition) -> list[dict[str, Any]]:
    # Order is kept: it decides check names (range, range_2) and so the asset checks.
    return [rule.model_dump(mode="json", exclude_none=True) for rule in definition.validation_rules]


def data_components(definition: FeatureDefinition) -> dict[str, Any]:
    """Canonical value of every data field, keyed by its dotted field name."""
    transformation = definition.transformation
    source = python_source(definition)
    components: dict[str, Any] = {
        "data_type": definition.data_type.value,
        "entity_columns": list(definition.entity_columns),
        "timestamp_column": definition.timestamp_column,
        "transformation.transformation_type": transformation.transformation_type.value,
        "transformation.code": normalized_code(definition),
        "transformation.parameters": dict(transformation.parameters),
        "transformation.source": _normalize_python(source) if source is not None else None,
        "upstream_features": sorted(definition.upstream_features),
        "sources": sorted(definition.sources),
        "validation_rules": _rules(definition),
        "duckdb_table": definition.table_name,
    }
    # Only when set, so that unpartitioned definitions keep the fingerprints they registered.
    if definition.partitions is not None:
        components["partitions"] = definition.partitions.model_dump(mode="json")
    return components


def metadata_components(definition: FeatureDefinition) -> dict[str, Any]:
    """Canonical value of every metadata field, keyed by field name.

    ``automation``, ``ttl`` and ``lookahead`` appear only when set, so definitions written
    before they existed keep their fingerprints.
    """
    components: dict[str, Any] = {
        "description": " ".join(definition.description.split()),
        "owner": definition.owner,
        "tags": sorted(definition.tags),
        "schedule": definition.schedule,
        "status": definition.status.value,
        "feature_type": definition.feature_type.value,
    }
    if definition.automation is not None:
        components["automation"] = definition.automation.value
    if definition.ttl is not None:
        components["ttl"] = definition.ttl
    if definition.lookahead is not None:
        components["lookahead"] = definition.lookahead
    return components


def data_fingerprint(definition: FeatureDefinition) -> str:
    """SHA-256 of the data components.

    Example:
        >>> data_fingerprint(definition) == data_fingerprint(definition_with_new_description)
        True
    """
    return _digest(data_components(definition))


def metadata_fingerprint(definition: FeatureDefinition) -> str:
    """SHA-256 of the metadata components."""
    return _digest(metadata_components(definition))


def fingerprints(definition: FeatureDefinition) -> tuple[str, str]:
    """``(data_fingerprint, metadata_fingerprint)``."""
    return data_fingerprint(definition), metadata_fingerprint(definition)


def _normalize_python(source: str) -> str:
    # Trailing spaces and blank lines are formatting; anything else in a function may matter.
    lines = [line.rstrip() for line in inspect.cleandoc(source).splitlines()]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()
