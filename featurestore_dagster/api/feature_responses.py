"""Answers of ``GET /features/{name}`` kept per worker, as bytes with their ETag.

An answer is built from the definitions (the served graph) and the feature's registry row.
It is kept with the registry marker read before it was built (``RegistryMarker``: it changes
on any commit to the registry, by any process) and the graph object it saw; it is reused only
while both are still the same. A kept answer costs a marker read (microseconds on SQLite)
and a dictionary probe instead of a registry query and a model dump (~0.5 ms).

Reads may use definitions up to ``ServedStore.refresh_seconds`` old, but not older than the
registry: when the feature's registry row was written after the served graph last looked at
the files (the command line writes the file, then registers it), the answer is built from
the files as they are now. So a change made through the command line in another process
shows in the next read, whichever worker answers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from featurestore_dagster.api.registry_marker import RegistryMarker
from featurestore_dagster.api.served import relaxed_graph

MAX_ENTRIES = 10_000
# Clock difference allowed between the registry's writers and this server.
CLOCK_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str
    marker: Any
    graph: Any


class FeatureResponses:
    """Per-worker answers of single-feature reads (thread-safe)."""

    def __init__(self, store: Any, render):
        self.store = store
        self._render = render  # FeatureInfo -> (body, etag)
        url = getattr(getattr(store, "settings", None), "registry_url", None)
        self.marker = RegistryMarker(url) if url else None
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        """Whether ``kept`` does no network round trip (fit for the event loop)."""
        return self.marker is not None and self.marker.local

    def kept(self, name: str) -> Answer | None:
        """The kept answer for ``name`` if the registry and graph are unchanged since."""
        answer = self._answers.get(name)
        if answer is None or self.marker is None:
            return None
        marker = self.marker()
        if marker is None or marker != answer.marker or self.store.graph is not answer.graph:
            return None
        return answer

    def answer(self, name: str) -> Answer:
        """The kept answer, else a new one (a registry read; raises as ``get_feature``)."""
        kept = self.kept(name)
        if kept is not None:
            return kept
        marker = self.marker() if self.marker is not None else None
        graph = self.store.graph
        info = self.store.get_feature(name)
        if self._registered_after_graph(info):
            with relaxed_graph(False):
                graph = self.store.graph
                info = self.store.get_feature(name)
        body, etag = self._render(info)
        answer = Answer(body, etag, marker, graph)
        if marker is not None:
            with self._lock:
                if len(self._answers) >= MAX_ENTRIES:
                    self._answers.clear()
                self._answers[name] = answer
        return answer

    def _registered_after_graph(self, info) -> bool:
        checked_at = getattr(self.store, "graph_checked_at", None)
        if checked_at is None or info.updated_at is None:
            return False
        return info.updated_at.timestamp() >= checked_at - CLOCK_SLACK_SECONDS
