"""The FastAPI application: routes under ``/api/v1``, auth, a body-size limit, ``/healthz``.

``create_app(store, tokens)`` builds it around one ``FeatureStore``; ``app_from_environment``
is the factory ``featurestore serve`` hands to uvicorn (each worker process builds its own
from the environment the command set).
"""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from featurestore_dagster.api import features, history
from featurestore_dagster.api.auth import TokenTable, is_loopback_client, load_tokens
from featurestore_dagster.api.deps import ReadAccess
from featurestore_dagster.api.errors import install_error_handlers
from featurestore_dagster.api.feature_responses import FeatureResponses
from featurestore_dagster.api.features import public, rendered
from featurestore_dagster.api.schemas import ErrorBody, Health
from featurestore_dagster.api.served import ServedStore, relaxed_graph
from featurestore_dagster.api.usage_writer import UsageWriter
from featurestore_dagster.store import FeatureStore

API_PREFIX = "/api/v1"
# POSTs that never edit a definition (they may use definitions up to a second old).
RELAXED_POSTS = {
    f"{API_PREFIX}/{p}" for p in ("features/usage", "training-sets", "online-features")
}
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SPINE_PATH = f"{API_PREFIX}/training-sets"
SPINE_FACTOR = 32
ENV_ANONYMOUS_READ = "FEATURESTORE_API_ANONYMOUS_READ"
ENV_MAX_BODY_BYTES = "FEATURESTORE_API_MAX_BODY_BYTES"
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)
# Answers any route may give (besides its own).
COMMON_RESPONSES = {
    400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON"},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "The token's role does not allow this route"},
    413: {"model": ErrorBody, "description": "The body is larger than the server accepts"},
    422: {"model": ErrorBody, "description": "Invalid input; `detail` names the field"},
}


class BodyLimit:
    """Refuse bodies above ``limit`` bytes with a 413, by ``Content-Length`` or while
    reading a chunked body, before a route sees any of it. A training set's spine may be
    ``SPINE_FACTOR`` times larger."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit * (SPINE_FACTOR if scope["path"] == SPINE_PATH else 1)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size < 0 or size > limit:
                    await _json(send, 413, _too_large(size, limit))
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(seen, limit))
            return message

        await self.app(scope, limited, send)


def _too_large(size: int, limit: int) -> str:
    if size < 0:
        return "invalid Content-Length header"
    return f"request body too large: {size} bytes (limit {limit})"


class RelaxedReads:
    """GET requests and usage posts may use definitions up to a second old
    (``ServedStore``); every other request sees the files as they are now."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        relaxed = method in ("GET", "HEAD") or (method == "POST" and path in RELAXED_POSTS)
        store = scope["app"].state.store
        if relaxed or not isinstance(store, ServedStore):
            with relaxed_graph(relaxed):
                await self.app(scope, receive, send)
            return

        async def marking(message: Message) -> None:
            # The write is done when the answer starts: tell the other workers' reads first.
            if message["type"] == "http.response.start":
                store.mark_changed()
            await send(message)

        await self.app(scope, receive, marking)


class LoopbackOnly:
    """Without tokens, answer loopback clients only (the bind address already is loopback;
    this also holds behind a proxy)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            if not is_loopback_client(client[0] if client else None):
                await _json(send, 403, "no API tokens are configured: only loopback clients")
                return
        await self.app(scope, receive, send)


async def _json(send: Send, code: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    store: FeatureStore | None = None,
    tokens: TokenTable | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The REST API around ``store`` (default: ``FeatureStore()``), guarded by ``tokens``
    (default: none, loopback clients only)."""
    from featurestore_dagster import __version__

    store = store if store is not None else FeatureStore()
    tokens = tokens if tokens is not None else TokenTable()
    app = FastAPI(
        title="featurestore-dagster",
        version=__version__,
        description=(
            "A versioned feature store inside Dagster. Writes need a token with the write"
            " role; reads a token with the read role (or none with --anonymous-read)."
        ),
    )
    app.state.store = store
    app.state.tokens = tokens
    app.state.usage_writer = UsageWriter(store)
    app.state.feature_responses = FeatureResponses(
        store, lambda info: rendered(public(info, store))
    )
    install_error_handlers(app, store.settings.definitions_path)
    app.include_router(features.router, prefix=API_PREFIX, responses=COMMON_RESPONSES)
    app.include_router(history.router, prefix=API_PREFIX, responses=COMMON_RESPONSES)
    if hasattr(store, "get_training_set") and hasattr(store, "get_online_features"):
        from featurestore_dagster.api import consumers

        app.include_router(consumers.router, prefix=API_PREFIX, responses=COMMON_RESPONSES)

    def health() -> Health:
        return Health(status="ok", version=__version__, features=len(store.graph.names))

    app.add_api_route("/healthz", health, response_model=Health, tags=["health"])
    app.add_api_route(
        f"{API_PREFIX}/healthz",
        health,
        response_model=Health,
        tags=["health"],
        dependencies=[ReadAccess],
        responses=COMMON_RESPONSES,
    )
    app.add_middleware(RelaxedReads)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    if not tokens.enabled:
        app.add_middleware(LoopbackOnly)
    return app


def app_from_environment() -> FastAPI:
    """The application of ``featurestore serve``: store and tokens from the environment."""
    anonymous = os.environ.get(ENV_ANONYMOUS_READ, "") in {"1", "true", "yes"}
    limit = int(os.environ.get(ENV_MAX_BODY_BYTES) or DEFAULT_MAX_BODY_BYTES)
    app = create_app(ServedStore(), load_tokens(anonymous_read=anonymous), max_body_bytes=limit)
    quiet_garbage_collector()
    return app


def quiet_garbage_collector() -> None:
    """Keep the cyclic garbage collector's pauses short in a worker.

    After start-up a worker holds ~150,000 objects (FastAPI, Dagster's modules, the graph);
    a full collection walks all of them (~50 ms, up to ~130 ms seen while answering), a pause
    every request in flight waits for. They live as long as the process: ``gc.freeze()`` moves
    them out of the collector's sight. A larger first-generation threshold then trades ~1,000
    collections of up to ~1 ms for ~50 of up to ~3.5 ms per 4,000 requests (less time in all),
    and the older generations are collected rarely (most of a request's garbage is freed by
    reference counting, not by the collector)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 50)
