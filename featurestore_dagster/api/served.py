"""The server's ``FeatureStore``: reads reuse the loaded definitions for a moment.

Finding out whether any definition file changed means a ``stat`` of every file (about 3 ms
per request at 1,000 features). A server answering many reads a second re-checks at most every
``refresh_seconds`` for reads and usage posts; every other request (anything that edits a
definition) checks on each call, as the command line does, so a write never works from a
stale graph. Each such request also touches a marker file that every worker's reads look at
(one ``stat``), so a client reads its own writes whichever worker answers; a definition
edited outside the server is seen by reads within ``refresh_seconds``.

A definition posted to the server may only name python functions in the project's own
sources (``project_module_issue``): a client holding a write token cannot make the server
(or a later build) import a standard-library or installed module. Checking imports nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from featurestore_dagster.build.transformations import project_module_issue
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition, TransformationType
from featurestore_dagster.errors import DefinitionError, DefinitionIssue
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
        self._served: tuple[float, int, FeatureGraph] | None = None
        self._served_lock = threading.Lock()
        # Wall time (epoch seconds) just before the served graph last looked at the files:
        # it holds every definition written before then.
        self.graph_checked_at = 0.0
        self.marker_path = self.settings.cache_path.parent / "served_generation"

    def _generation(self) -> int:
        try:
            return os.stat(self.marker_path).st_mtime_ns
        except OSError:
            return 0

    def mark_changed(self) -> None:
        """Tell every worker's reads that a definition may have changed."""
        self.marker_path.parent.mkdir(parents=True, exist_ok=True)
        self.marker_path.touch()
        now = time.time_ns()
        os.utime(self.marker_path, ns=(now, now))

    def _usable(self, served, generation: int) -> bool:
        return (
            served is not None
            and served[1] == generation
            and time.monotonic() - served[0] < self.refresh_seconds
        )

    @property
    def graph(self) -> FeatureGraph:
        relaxed = _relaxed.get()
        generation = self._generation() if relaxed else 0
        if relaxed and self._usable(self._served, generation):
            return self._served[2]
        with self._served_lock:  # one thread re-checks; the others wait for its answer
            if relaxed and self._usable(self._served, generation):
                return self._served[2]
            generation = self._generation()
            checked_at = time.time()
            graph = FeatureStore.graph.fget(self)
            self.graph_checked_at = checked_at
            self._served = (time.monotonic(), generation, graph)
            return graph

    def _check_graph(self, graph: FeatureGraph, definition: FeatureDefinition) -> FeatureGraph:
        """Also: a new or changed python transformation must be a function of the project."""
        transformation = definition.transformation
        if transformation.transformation_type == TransformationType.PYTHON:
            name = definition.feature_name
            before = graph[name].transformation if name in graph else None
            if before is None or before.code.strip() != transformation.code.strip():
                problem = project_module_issue(transformation.code, self.settings.project_root)
                if problem is not None:
                    raise DefinitionError(
                        DefinitionIssue(problem, feature=name, field="transformation.code")
                    )
        return super()._check_graph(graph, definition)
