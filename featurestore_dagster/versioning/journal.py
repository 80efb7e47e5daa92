"""Intents that make "edit the definition file, then register it" recoverable.

A change (a rollback, a bump through the API, a lifecycle transition) rewrites a definition
file and then registers the result in the registry: two stores, no shared transaction. A
process killed between the two leaves a file ahead of the registry. Before the file is
written, the registration's own facts (what it restores, what it rolls back, its event,
author and category) are saved here, one small JSON file per feature; they are removed once
the registry has committed. The next change of that feature, or ``apply``, finds the intent,
sees that the file still holds exactly the definition it was written for, and completes the
registration it belongs to (a rollback keeps its ``restored_from``) instead of refusing the
file as an unregistered edit or registering it as an anonymous one.

An intent whose definition no longer matches the file (the edit never happened, or someone
changed the file since) is stale and dropped.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from featurestore_dagster.errors import DefinitionError, DefinitionIssue


@dataclass
class PendingRegistration:
    """What a registration needs beyond the definition file itself."""

    feature_name: str
    version: str
    snapshot: dict[str, Any]
    change_category: str
    event: str = "registered"
    restored_from: str | None = None
    rolls_back: list[str] = field(default_factory=list)
    created_by: str | None = None

    def matches(self, payload: dict[str, Any]) -> bool:
        """Whether the file now holds exactly the definition this intent was written for."""
        return payload == self.snapshot

    def extras(self) -> dict[str, Any]:
        """Keyword arguments that make a ``Registration`` the one that was interrupted."""
        return {
            "event": self.event,
            "restored_from": self.restored_from,
            "rolls_back": list(self.rolls_back),
            "created_by": self.created_by,
        }


class Journal:
    """Pending registrations under ``directory`` (``.featurestore/pending/`` by default)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, feature_name: str) -> Path:
        return self.directory / f"{feature_name}.json"

    def write(self, pending: PendingRegistration) -> None:
        """Save ``pending`` atomically (a crash leaves the old intent or the new one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".pending-", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(asdict(pending), stream, sort_keys=True)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self._path(pending.feature_name))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def write_or_refuse(self, pending: PendingRegistration) -> None:
        """``write``, or refuse the change (exit 2) when the folder cannot be written: without
        the intent a crash between file and registry could not be recovered."""
        try:
            self.write(pending)
        except OSError as error:
            raise DefinitionError(
                DefinitionIssue(
                    f"cannot record the pending change in {self.directory}:"
                    f" {error.strerror or error}; nothing was changed",
                    feature=pending.feature_name,
                )
            ) from None

    def read(self, feature_name: str) -> PendingRegistration | None:
        """The intent saved for ``feature_name``; None when there is none or it is unreadable
        (an intent is a recovery aid: a damaged one is treated as absent)."""
        try:
            data = json.loads(self._path(feature_name).read_text(encoding="utf-8"))
            return PendingRegistration(**data)
        except (OSError, ValueError, TypeError):
            return None

    def clear(self, feature_name: str) -> None:
        try:
            self._path(feature_name).unlink(missing_ok=True)
        except OSError:
            pass  # an unwritable folder: the stale intent is dropped on the next read
