"""Typed library errors -> HTTP status codes and JSON ``{"detail": ...}`` bodies.

Bad input is always a 4xx naming the field; anything unexpected is a 500 with a generic
message (the traceback goes to the server log, never to the client).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from featurestore_dagster import errors as _errors
from featurestore_dagster.errors import (
    BreakingChangeError,
    DefinitionError,
    FeatureStoreError,
    MaterializationError,
    RegistryError,
    TransitionError,
    UnknownFeatureError,
    UsageError,
    VersionError,
)

log = logging.getLogger("featurestore.api")

# Most specific first: the first class an error is an instance of decides.
STATUS = (
    (UnknownFeatureError, 404),
    # A spine or entity rows that do not fit, a version no longer retained, lookahead.
    *(((_errors.TrainingSetError, 422),) if hasattr(_errors, "TrainingSetError") else ()),
    (DefinitionError, 422),
    (UsageError, 422),
    (VersionError, 409),
    (TransitionError, 409),
    (BreakingChangeError, 409),
    (MaterializationError, 409),
    (RegistryError, 503),
    (FeatureStoreError, 400),
)


class ApiError(Exception):
    """An HTTP error raised by a route with a JSON-able ``detail``."""

    def __init__(self, status_code: int, detail: Any, headers: dict[str, str] | None = None):
        super().__init__(str(detail))
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def status_of(error: FeatureStoreError) -> int:
    return next(code for cls, code in STATUS if isinstance(error, cls))


def definition_detail(error: DefinitionError, root: Path | None) -> list[dict[str, Any]]:
    """One entry per issue, located in the request body like FastAPI's own 422s."""
    items = []
    for issue in error.issues:
        loc: list[Any] = ["body"]
        if issue.field:
            loc += [int(p) if p.isdigit() else p for p in _split_field(issue.field)]
        entry: dict[str, Any] = {"loc": loc, "msg": issue.message, "type": "definition_error"}
        if issue.feature:
            entry["feature"] = issue.feature
        if issue.field:
            entry["field"] = issue.field
        if issue.file is not None:
            entry["file"] = _relative(Path(issue.file), root)
        items.append(entry)
    return items


def _split_field(field: str) -> list[str]:
    return [p for p in field.replace("[", ".").replace("]", "").split(".") if p]


def _relative(path: Path, root: Path | None) -> str:
    """A definition file relative to the definitions folder (server paths stay private)."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return path.name


def _private_paths(message: str, root: Path | None) -> str:
    """Definition files named relative to the definitions folder."""
    if root is None:
        return message
    for form in {str(root), str(root.resolve())}:
        message = message.replace(form + "/", "")
    return message


def _small_input(value: Any) -> bool:
    """Echo an invalid input back only when it is a short scalar."""
    return isinstance(value, str | int | float | bool) and len(str(value)) <= 200


def _jsonable(value: Any) -> Any:
    """FastAPI's validation errors may carry inputs JSON cannot hold (NaN, bytes, exceptions)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def install_error_handlers(app: FastAPI, definitions_root: Path | None) -> None:
    @app.exception_handler(FeatureStoreError)
    async def _store_error(request: Request, error: FeatureStoreError) -> JSONResponse:
        code = status_of(error)
        if isinstance(error, DefinitionError):
            detail: Any = definition_detail(error, definitions_root)
        else:
            detail = _private_paths(str(error), definitions_root)
        if code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": detail}, status_code=code)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = []
        for item in error.errors():
            entry = {k: item[k] for k in ("loc", "msg", "type") if k in item}
            if _small_input(item.get("input")) and item.get("type") != "json_invalid":
                entry["input"] = item["input"]
            detail.append(entry)
        return JSONResponse({"detail": _jsonable(detail)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
