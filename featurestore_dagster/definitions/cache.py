"""A content-addressed cache for loading large repositories quickly.

Two kinds of entries, both keyed by the SHA-256 of their input: parsed YAML documents (libyaml
still builds every node in Python) and the table references of rendered SQL (sqlglot parsing
is most of a load; SQLMesh caches parsed models for the same reason). Validation itself is never
skipped: cached documents still go through pydantic and the graph checks.

The key also holds the PyYAML and sqlglot versions, so an edit or an upgrade never serves a
stale answer. The cache is an optimization only: a missing, unreadable or unwritable file just
means parsing again. Each save keeps only the entries the load used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import sqlglot
import yaml

from featurestore_dagster.definitions.sql import (
    REFERENCE_RULES_VERSION,
    References,
    table_references,
)

_VERSION = (
    f"3|rules={REFERENCE_RULES_VERSION}|sqlglot={sqlglot.__version__}|pyyaml={yaml.__version__}"
)
_MISSING = object()


class LoadCache:
    """Parsed documents and SQL references behind one JSON file (or none: ``LoadCache(None)``)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._entries: dict[str, Any] = {}
        self._used: set[str] = set()
        self._dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text())
                if data.get("version") == _VERSION:
                    self._entries = data["entries"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._entries = {}

    def _lookup(self, kind: str, text: str, compute) -> Any:
        key = kind + ":" + hashlib.sha256(text.encode()).hexdigest()
        self._used.add(key)
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            value = compute()  # errors propagate and are never cached
            self._entries[key] = value
            self._dirty = True
        return value

    def document(self, text: str, parse) -> Any:
        """``parse(text)`` (a YAML load), cached when it survives a JSON round trip unchanged
        (YAML dates or non-string keys do not, and are parsed every time)."""
        parsed: list[Any] = []

        def compute():
            value = parse(text)
            parsed.append(value)
            encoded = json.dumps(value)
            if json.loads(encoded) != value:
                raise _NotCacheable
            return encoded

        try:
            encoded = self._lookup("doc", text, compute)
        except (_NotCacheable, TypeError, ValueError):
            if parsed:
                return parsed[0]
            raise
        return parsed[0] if parsed else json.loads(encoded)

    def references(self, sql: str) -> References:
        """The tables and files ``sql`` reads (see ``sql.table_references``), cached."""

        def compute():
            found = table_references(sql)
            return [sorted(found.tables), sorted(found.files)]

        tables, files = self._lookup("refs", sql, compute)
        return References(frozenset(tables), frozenset(files))

    def save(self) -> None:
        """Write the entries this load used, atomically; ignore an unwritable location."""
        if self.path is None or not (self._dirty or self._used != set(self._entries)):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            entries = {k: v for k, v in self._entries.items() if k in self._used}
            payload = json.dumps({"version": _VERSION, "entries": entries})
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cache-")
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            os.replace(tmp, self.path)
            self._dirty = False
        except (OSError, TypeError, ValueError):
            pass


class _NotCacheable(Exception):
    pass
