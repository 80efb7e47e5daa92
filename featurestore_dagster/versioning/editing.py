"""Editing definition files in place: ruamel.yaml round-trip, comments and layout preserved.

``DefinitionFile`` opens one file (a single mapping or a ``features:`` list), changes the
fields of one feature and renders the text; ``FileEdits`` writes files atomically and puts
every original back if the step that follows (registering) fails, so nothing stays
half-written.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError, DefinitionIssue

# Canonical field order: where a field missing from a file is inserted.
FIELD_ORDER = list(FeatureDefinition.model_fields)
# (mapping, sequence, offset) layouts tried in turn; the first that reproduces the file wins.
_LAYOUTS = [(2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0)]


def _yaml(layout: tuple[int, int, int]) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = layout
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, document: Any) -> str:
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


class DefinitionFile:
    """One definition file opened for round-trip editing.

    Example:
        >>> f = DefinitionFile(Path("feature_definitions/technical/stock_rsi_14d.yaml"))
        >>> f.set_fields("stock_rsi_14d", {"version": "1.1.0", "changelog": "Faster"})
        >>> f.save()
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.original = self.path.read_text(encoding="utf-8")
        except OSError as error:
            raise DefinitionError(
                DefinitionIssue(f"cannot read definition file: {error}", file=self.path)
            ) from None
        self.yaml, self.document = self._load(self.original)

    def _load(self, text: str) -> tuple[YAML, Any]:
        try:
            document = _yaml(_LAYOUTS[0]).load(text)
        except YAMLError as error:
            raise DefinitionError(
                DefinitionIssue(f"YAML syntax error: {error}", file=self.path)
            ) from None
        # The indentation is only an output setting: dump with each layout, keep the one that
        # reproduces the file (or comes closest).
        best: tuple[int, YAML] | None = None
        for layout in _LAYOUTS:
            yaml = _yaml(layout)
            rendered = _dump(yaml, document)
            if rendered == text:
                return yaml, document
            distance = sum(
                a != b for a, b in zip(rendered.splitlines(), text.splitlines(), strict=False)
            )
            if best is None or distance < best[0]:
                best = (distance, yaml)
        assert best is not None
        return best[1], document

    def entries(self) -> list[CommentedMap]:
        """The feature mappings of the file, in file order."""
        document = self.document
        if isinstance(document, Mapping) and "features" in document:
            return [item for item in document["features"] if isinstance(item, Mapping)]
        if isinstance(document, Mapping):
            return [document]
        return []

    def entry(self, feature_name: str) -> CommentedMap:
        for item in self.entries():
            if item.get("feature_name") == feature_name:
                return item
        raise DefinitionError(
            DefinitionIssue("the file holds no such feature", file=self.path, feature=feature_name)
        )

    def set_fields(self, feature_name: str, changes: Mapping[str, Any]) -> None:
        """Set top-level fields of one feature; ``None`` removes a field. Nested mappings
        and lists are merged in place, so their comments and flow style survive."""
        entry = self.entry(feature_name)
        for key, value in changes.items():
            if value is None:
                entry.pop(key, None)
            elif key in entry:
                entry[key] = merge(entry[key], value)
            else:
                _insert(entry, key, to_yaml(value))

    def render(self) -> str:
        return _dump(self.yaml, self.document)

    @property
    def changed(self) -> bool:
        return self.render() != self.original


def merge(old: Any, new: Any) -> Any:
    """``new`` shaped like ``old``: same quoting, block/flow style and comments where the
    structure allows."""
    if isinstance(old, CommentedMap) and isinstance(new, Mapping):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key in old:
                old[key] = merge(old[key], value)
            else:
                old[key] = to_yaml(value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list | tuple):
        if len(old) == len(new):
            for index, value in enumerate(new):
                old[index] = merge(old[index], value)
            return old
        seq = CommentedSeq([to_yaml(v, flow=_is_flow(old)) for v in new])
        if _is_flow(old) or not new:
            seq.fa.set_flow_style()
        return seq
    if isinstance(new, str) and not isinstance(new, bool):
        if isinstance(old, str) and str(old) == new:
            return old
        if "\n" in new:
            return LiteralScalarString(new)
        for style in (DoubleQuotedScalarString, SingleQuotedScalarString, FoldedScalarString):
            if isinstance(old, style):
                return style(new)
        return new
    if type(old) is type(new) and old == new:
        return old
    return to_yaml(new)


def to_yaml(value: Any, *, flow: bool = False) -> Any:
    """Plain data -> ruamel nodes: multi-line strings as ``|`` blocks, short scalar lists and
    small flat mappings in flow style (``[a, b]``, ``{min: 0}``)."""
    if isinstance(value, Mapping):
        node = CommentedMap((k, to_yaml(v)) for k, v in value.items())
        short = all(_is_scalar(v) for v in value.values()) and len(repr(value)) <= 60
        if flow or (value and short):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list | tuple):
        node = CommentedSeq(to_yaml(v) for v in value)
        if flow or all(_is_scalar(v) for v in value):
            node.fa.set_flow_style()
        return node
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple) and not (
        isinstance(value, str) and "\n" in value
    )


def _is_flow(node: Any) -> bool:
    return bool(getattr(node, "fa", None) and node.fa.flow_style())


def _insert(entry: CommentedMap, key: str, value: Any) -> None:
    """Insert ``key`` after the nearest field that precedes it in the canonical order."""
    keys = list(entry)
    rank = FIELD_ORDER.index(key) if key in FIELD_ORDER else len(FIELD_ORDER)
    position = 0
    for index, existing in enumerate(keys):
        existing_rank = FIELD_ORDER.index(existing) if existing in FIELD_ORDER else -1
        if existing_rank < rank:
            position = index + 1
    entry.insert(position, key, value)
    if position == len(keys) and keys:
        # The blank line / comment that followed the old last field belongs after the new one.
        last = keys[-1]
        comment = entry.ca.items.pop(last, None)
        if comment is not None and not isinstance(entry[last], CommentedMap | CommentedSeq):
            entry.ca.items[key] = comment
        elif comment is not None:
            entry.ca.items[last] = comment


def new_definition_text(payload: Mapping[str, Any]) -> str:
    """YAML text of a new definition file, fields in the canonical order."""
    ordered = {k: payload[k] for k in FIELD_ORDER if k in payload}
    document = to_yaml(ordered)
    document.fa.set_block_style()
    return _dump(_yaml((2, 4, 2)), document)


def _atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step; a file that cannot be written (a read-only
    folder, a full disk) is a ``DefinitionError`` naming it, and is left as it was."""
    try:
        _replace(path, text)
    except OSError as error:
        raise DefinitionError(
            DefinitionIssue(
                f"cannot write the definition file: {error.strerror or error}; it was left"
                " unchanged",
                file=path,
            )
        ) from None


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileEdits:
    """Files written in one step; ``restore()`` puts every original back (or removes a
    file that did not exist)."""

    def __init__(self) -> None:
        self._originals: dict[Path, str | None] = {}

    def write(self, path: Path, text: str) -> None:
        path = Path(path)
        first = path not in self._originals
        original = path.read_text(encoding="utf-8") if first and path.exists() else None
        _atomic_write(path, text)  # atomic: on failure the file is as it was, nothing to undo
        if first:
            self._originals[path] = original

    def restore(self) -> None:
        for path, text in self._originals.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                _atomic_write(path, text)
        self._originals.clear()

    @property
    def paths(self) -> list[Path]:
        return list(self._originals)


@contextmanager
def definitions_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a lock file) for the block, so two processes never
    interleave read-edit-register of the same definitions. A no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: the registry's unique versions still refuse conflicts
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def file_edits() -> Iterator[FileEdits]:
    """Write files inside the block; any exception restores them all before it propagates."""
    edits = FileEdits()
    try:
        yield edits
    except BaseException:
        edits.restore()
        raise
