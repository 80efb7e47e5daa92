"""Definition files -> validated ``FeatureDefinition`` objects, every error of a load at once.

Files are read in sorted order, so the result never depends on the file system's order.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from featurestore_dagster.definitions.cache import LoadCache
from featurestore_dagster.definitions.models import (
    FeatureDefinition,
    Transformation,
    ValidationRule,
)
from featurestore_dagster.errors import DefinitionError, DefinitionIssue

DEFINITION_SUFFIXES = (".yaml", ".yml")
# libyaml's safe loader is ~10x faster than the pure-Python one on large repositories.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A definition is a few levels deep; parameters may nest a little. Deeper documents are refused
# before anything recurses over them (pydantic, JSON, fingerprints).
MAX_DEPTH = 32
# Aliases may share a node, but the document as every consumer sees it (expanded) must stay
# within a small multiple of the file: an 800-byte alias bomb expands to gigabytes.
EXPANSION_FACTOR = 10
EXPANSION_SLACK = 64 * 1024
_KNOWN_FIELDS = [
    *FeatureDefinition.model_fields,
    *Transformation.model_fields,
    *ValidationRule.model_fields,
]


def definition_files(folder: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` below ``folder``, sorted, hidden folders skipped."""
    if not folder.is_dir():
        return []
    files = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and os.path.splitext(name)[1] in DEFINITION_SUFFIXES:
                path = Path(directory, name)
                if path.is_file():
                    files.append(path)
    # The order of sorted(paths), without a Path comparison per step of the sort.
    return sorted(files, key=lambda path: path.parts)


def load_definitions(folder: Path) -> list[FeatureDefinition]:
    """Parse and validate every definition file under ``folder``.

    Raises:
        DefinitionError: listing every problem found (file, feature, field), not only the first.
    """
    definitions, issues = collect_definitions(folder)
    if issues:
        raise DefinitionError(issues)
    return definitions


def collect_definitions(
    folder: Path, *, cache: LoadCache | None = None
) -> tuple[list[FeatureDefinition], list[DefinitionIssue]]:
    """Like ``load_definitions`` but returns the problems instead of raising.

    Features whose file could be read but whose definition is invalid are left out of the
    result; their names are still reserved (a duplicate of one is reported).
    """
    if not folder.exists():
        return [], [DefinitionIssue(f"definitions folder {folder} does not exist", file=folder)]
    definitions: list[FeatureDefinition] = []
    issues: list[DefinitionIssue] = []
    seen: dict[str, Path] = {}
    for path in definition_files(folder):
        entries, file_issues = read_definition_file(path, cache=cache)
        issues.extend(file_issues)
        for raw_name, definition in entries:
            name = definition.feature_name if definition else raw_name
            if name:
                if name in seen:
                    issues.append(
                        DefinitionIssue(
                            f"feature name is already defined in {seen[name]}; names must be"
                            " unique across the repository",
                            file=path,
                            feature=name,
                            field="feature_name",
                        )
                    )
                    continue
                seen[name] = path
            if definition is not None:
                definitions.append(definition)
    return definitions, issues


def read_definition_file(
    path: Path, *, cache: LoadCache | None = None
) -> tuple[list[tuple[str | None, FeatureDefinition | None]], list[DefinitionIssue]]:
    """One file -> ``[(name, definition or None when invalid)]`` and its problems."""
    try:
        text = path.read_text(encoding="utf-8")
        document = (cache or LoadCache(None)).document(text, _parse_yaml)
    except DocumentShapeError as error:
        return [], [DefinitionIssue(str(error), file=path)]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        return [], [DefinitionIssue(f"YAML syntax error{where}: {problem}", file=path)]
    except (OSError, UnicodeDecodeError) as error:
        return [], [DefinitionIssue(f"cannot read file: {error}", file=path)]

    if document is None:
        return [], []
    if isinstance(document, dict) and "features" in document:
        extra = sorted(set(document) - {"features"})
        if extra:
            return [], [
                DefinitionIssue(
                    f"a file with a top-level 'features:' list holds nothing else; found {extra}",
                    file=path,
                    field=extra[0],
                )
            ]
        items = document["features"]
        if not isinstance(items, list):
            return [], [DefinitionIssue("'features' must be a list", file=path, field="features")]
        prefix = "features"
    elif isinstance(document, dict):
        items, prefix = [document], None
    else:
        return [], [
            DefinitionIssue(
                "a definition file holds one feature (a mapping) or a top-level 'features:' list",
                file=path,
            )
        ]

    entries: list[tuple[str | None, FeatureDefinition | None]] = []
    issues: list[DefinitionIssue] = []
    for index, item in enumerate(items):
        base = f"{prefix}[{index}]" if prefix else None
        definition, item_issues = parse_definition(item, file=path, base_field=base)
        issues.extend(item_issues)
        entries.append((_raw_name(item), definition))
    return entries, issues


class DocumentShapeError(Exception):
    """A YAML document too deep, self-referencing, or expanding far beyond its file's size."""


def _parse_yaml(text: str):
    document = yaml.load(text, Loader=_YAML_LOADER)
    check_document_shape(document, len(text))
    return document


def check_document_shape(document: Any, text_size: int) -> None:
    """Refuse a parsed document deeper than ``MAX_DEPTH`` or whose aliases expand it beyond
    ``EXPANSION_FACTOR`` times its text.

    The walk visits each distinct node once (sizes of shared nodes are memoized), so an alias
    bomb is measured in microseconds without ever being expanded.

    Raises:
        DocumentShapeError: with a message fit for the user.
    """
    limit = EXPANSION_FACTOR * text_size + EXPANSION_SLACK
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if not isinstance(node, dict | list):
            return len(str(node)) + 1
        if depth > MAX_DEPTH:
            raise DocumentShapeError(
                f"YAML is nested more than {MAX_DEPTH} levels deep; a definition needs a few"
            )
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise DocumentShapeError("a YAML alias refers to a node that contains it")
        in_progress.add(key)
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for item in items:
            total += size(item, depth + 1)
            if total > limit:
                raise DocumentShapeError(
                    f"YAML aliases expand this {text_size}-byte file beyond {limit} bytes;"
                    " repeat the values instead of aliasing them"
                )
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(document, 0)


def parse_definition(
    data: Any, *, file: Path | None = None, base_field: str | None = None
) -> tuple[FeatureDefinition | None, list[DefinitionIssue]]:
    """Validate one mapping; return the definition or the list of its problems."""
    name = _raw_name(data)
    if not isinstance(data, dict):
        return None, [DefinitionIssue("a feature definition must be a mapping", file, name)]
    try:
        definition = FeatureDefinition.model_validate(data)
    except ValidationError as error:
        return None, validation_issues(error, file=file, feature=name, base_field=base_field)
    return definition.with_path(file), []


def validation_issues(
    error: ValidationError,
    *,
    file: Path | None = None,
    feature: str | None = None,
    base_field: str | None = None,
) -> list[DefinitionIssue]:
    """Turn pydantic's errors into issues with dotted field paths and plain messages."""
    issues = []
    for item in error.errors():
        field = _field_path(item["loc"])
        if base_field:
            field = f"{base_field}.{field}" if field else base_field
        issues.append(
            DefinitionIssue(_message(item), file=file, feature=feature, field=field or None)
        )
    return issues


def _raw_name(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("feature_name"), str):
        return data["feature_name"]
    return None


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(item: dict) -> str:
    kind = item["type"]
    message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(item["loc"][-1]), _KNOWN_FIELDS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see the definition fields in the README"
        return f"unknown field ({hint})"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and item["loc"][-1:] == ("feature_name",):
        return (
            f"'{item['input']}' is not a valid feature name: lowercase letters, digits and"
            " '_', starting with a letter, at most 63 characters"
        )
    if kind == "enum":
        return f"'{item['input']}' is not allowed: {message.removeprefix('Input should be ')}"
    return message
