"""Group commit of usage posts: many concurrent posts, one registry transaction.

A post costs little to check but a whole write transaction to store (on SQLite, the write
lock and a commit; both workers queue on that one lock). ``UsageWriter`` keeps one writer
thread per worker process: each post hands its items over and waits; the thread takes every
post queued while the previous transaction ran and writes them together with
``FeatureStore.record_usage_groups`` (each post still checked, and refused, on its own). A
post is answered only after its transaction committed, so a 201 still means stored. Nothing
waits on purpose: with one client at a time every transaction holds one post.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from featurestore_dagster.api.served import relaxed_graph
from featurestore_dagster.errors import UnknownFeatureError
from featurestore_dagster.usage.models import UsageBatchResult

MAX_GROUP_RECORDS = 2000  # records per transaction at most (a model run may hold hundreds)


class UsageWriter:
    """The worker's writer thread for ``record`` (started on first use)."""

    def __init__(self, store: Any, *, max_records: int = MAX_GROUP_RECORDS):
        self.store = store
        self.max_records = max_records
        self._pending: deque[tuple[list[Mapping[str, Any]], int, asyncio.Future]] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    async def record(self, items: list[Mapping[str, Any]], size: int) -> UsageBatchResult:
        """Store ``items`` (``size`` records) with the stored records returned; raises what
        ``record_usage_batch`` would raise for them alone."""
        future = asyncio.get_running_loop().create_future()
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="featurestore-usage-writer", daemon=True
                )
                self._thread.start()
            self._pending.append((items, size, future))
            self._wake.notify()
        return await future

    def _take(self) -> list[tuple[list[Mapping[str, Any]], int, asyncio.Future]]:
        with self._wake:
            while not self._pending:
                self._wake.wait()
            taken = [self._pending.popleft()]
            records = taken[0][1]
            while self._pending and records + self._pending[0][1] <= self.max_records:
                taken.append(self._pending.popleft())
                records += taken[-1][1]
            return taken

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                results = self._write([items for items, _, _ in batch])
            except BaseException as error:  # noqa: BLE001 - every waiting post gets the error
                results = [error] * len(batch)
            for (_, _, future), result in zip(batch, results, strict=True):
                future.get_loop().call_soon_threadsafe(_settle, future, result)

    def _write(self, groups: list[list[Mapping[str, Any]]]) -> list[Any]:
        with relaxed_graph(True):
            results = self.store.record_usage_groups(groups, return_records=True)
        unknown = [i for i, result in enumerate(results) if isinstance(result, UnknownFeatureError)]
        if unknown:  # maybe created a moment ago: look at the files again
            with relaxed_graph(False):
                again = self.store.record_usage_groups(
                    [groups[i] for i in unknown], return_records=True
                )
            for index, result in zip(unknown, again, strict=True):
                results[index] = result
        return results


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
