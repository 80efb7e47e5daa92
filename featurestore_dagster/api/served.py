"""The server's ``FeatureStore``: reads reuse the loaded definitions for a moment.

Finding out whether any definition file changed means a ``stat`` of every file (about 3 ms
per request at 1,000 features). A server answering many reads a second re-checks at most every
``refresh_seconds`` for reads and usage posts; every other request (anything that edits a
definition) checks on each call, as the command line does, so a write never works from a
stale graph. A definition file edited by hand is seen by reads within ``refresh_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.store import FeatureStore

DEFAULT_REFRESH_SECONDS = 1.0
_relaxed: ContextVar[bool] = ContextVar("featurestore_api_relaxed_graph", default=False)


@contextmanager
def relaxed_graph(enabled: bool = True) -> Iterator[None]:
    """Within the block, ``ServedStore.graph`` may return a graph up to the refresh age."""
    token = _relaxed.set(enabled)
    try:
        yield
    finally:
        _relaxed.reset(token)


class ServedStore(FeatureStore):
    """``FeatureStore`` whose ``graph`` is re-checked at most every ``refresh_seconds``
    inside ``relaxed_graph()`` (and on every access outside it)."""

    refresh_seconds = DEFAULT_REFRESH_SECONDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._served: tuple[float, FeatureGraph] | None = None
        self._served_lock = threading.Lock()

    @property
    def graph(self) -> FeatureGraph:
        served = self._served
        if _relaxed.get() and served and time.monotonic() - served[0] < self.refresh_seconds:
            return served[1]
        with self._served_lock:  # one thread re-checks; the others wait for its answer
            served = self._served
            if _relaxed.get() and served and time.monotonic() - served[0] < self.refresh_seconds:
                return served[1]
            graph = FeatureStore.graph.fget(self)
            self._served = (time.monotonic(), graph)
            return graph
