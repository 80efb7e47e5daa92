"""What every route depends on: the process's ``FeatureStore`` and the role it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from featurestore_dagster.api.auth import GRANTS, TokenTable
from featurestore_dagster.api.errors import ApiError
from featurestore_dagster.definitions.models import NAME_PATTERN
from featurestore_dagster.store import FeatureStore

bearer = HTTPBearer(auto_error=False, description="A token with the read or write role.")

NamePath = Annotated[
    str,
    Path(
        pattern=NAME_PATTERN,
        max_length=63,
        description="Feature name (lowercase letters, digits and '_', starting with a letter).",
    ),
]


# Dependencies are coroutines: they do no I/O, and a plain function would cost a hop to the
# thread pool (and back) per dependency per request.
async def get_store(request: Request) -> FeatureStore:
    return request.app.state.store


def _require(role: str):
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        tokens: TokenTable = request.app.state.tokens
        if not tokens.enabled:  # loopback only; the middleware refused everyone else
            return
        if role == "read" and tokens.anonymous_read:
            return
        if credentials is None or not credentials.credentials:
            raise ApiError(
                401,
                "missing bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = tokens.role_of(credentials.credentials)
        if found is None:
            challenge = 'Bearer error="invalid_token"'
            raise ApiError(401, "invalid bearer token", headers={"WWW-Authenticate": challenge})
        if found not in GRANTS[role]:
            raise ApiError(403, f"this token has the '{found}' role; this route needs '{role}'")

    return check


require_read = _require("read")
require_write = _require("write")

Store = Annotated[FeatureStore, Depends(get_store)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
