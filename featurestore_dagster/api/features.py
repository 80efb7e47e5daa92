"""Feature routes: create, list, read, update, archive, activate, deprecate.

Every write goes through ``FeatureStore`` (the definition file is written and the change
registered in one step, under the definitions lock the command line also takes).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from featurestore_dagster.api.deps import NamePath, ReadAccess, Store, WriteAccess
from featurestore_dagster.api.errors import ApiError
from featurestore_dagster.api.feature_responses import FeatureResponses
from featurestore_dagster.api.schemas import ErrorBody, FeatureList, FeatureUpdate
from featurestore_dagster.definitions.models import FeatureDefinition, FeatureStatus, FeatureType
from featurestore_dagster.errors import TransitionError
from featurestore_dagster.models import FeatureInfo
from featurestore_dagster.versioning.changes import TRANSITIONS, blocking_downstream

router = APIRouter(prefix="/features", tags=["features"])

MAX_LIMIT = 1000
ERRORS = {
    404: {"model": ErrorBody, "description": "Unknown feature"},
    409: {
        "model": ErrorBody,
        "description": "Refused by the feature's state (lifecycle, versions, downstream)",
    },
    422: {"model": ErrorBody, "description": "Invalid input; `detail` names the field"},
}
# status -> the lifecycle operation that reaches it (with its guards).
OPERATION_TO = {"active": "activate", "deprecated": "deprecate", "archived": "archive"}


def public(info: FeatureInfo, store) -> FeatureInfo:
    """The feature with its definition file relative to the definitions folder."""
    if not info.definition_file:
        return info
    relative = _relative_file(info.definition_file, str(store.settings.definitions_path))
    return info.model_copy(update={"definition_file": relative})


@functools.lru_cache(maxsize=4096)
def _relative_file(path: str, root: str) -> str:
    """``path`` relative to ``root`` (both resolved: symlinks count), else its file name.
    Cached: resolving both took two ``realpath`` walks on every read of a feature."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return Path(path).name


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {item.strip().removeprefix("W/") for item in header.split(",")}
    return "*" in candidates or etag in candidates


def rendered(info: FeatureInfo) -> tuple[bytes, str]:
    """The JSON body of ``info`` and its ETag."""
    body = info.model_dump_json().encode()
    return body, etag_of(body)


def feature_response(info: FeatureInfo, code: int = 200) -> Response:
    body, etag = rendered(info)
    return Response(body, status_code=code, media_type="application/json", headers={"ETag": etag})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureInfo,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "The feature exists"}},
    dependencies=[WriteAccess],
    summary="Create a feature (writes its definition file and registers it)",
)
def create_feature(definition: FeatureDefinition, store: Store) -> Response:
    name = definition.feature_name
    if definition.status == FeatureStatus.ARCHIVED:
        # An archived definition is never compiled, so nothing about it would be checked.
        raise ApiError(
            422,
            [
                {
                    "loc": ["body", "status"],
                    "msg": "a feature cannot be created archived; create it, then DELETE it",
                    "type": "value_error",
                    "field": "status",
                }
            ],
        )
    if name in store.graph:
        raise ApiError(409, f"feature '{name}' already exists; update it with PUT /features/{name}")
    fields = definition.model_dump(mode="json", exclude_unset=True)
    info = store.create_feature(**fields)
    return feature_response(public(info, store), 201)


@router.get(
    "",
    response_model=FeatureList,
    dependencies=[ReadAccess],
    summary="List features (filters as list_features; paged by skip and limit)",
)
def list_features(
    store: Store,
    feature_type: FeatureType | None = None,
    status: FeatureStatus | None = None,
    owner: Annotated[str | None, Query(max_length=255)] = None,
    tags: Annotated[
        list[str] | None,
        Query(max_length=100, description="Has these tags (repeat or comma-separate)."),
    ] = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> FeatureList:
    wanted = [t.strip() for item in tags or [] for t in item.split(",") if t.strip()] or None
    matching = store.list_features(
        feature_type=feature_type, status=status, owner=owner, tags=wanted, skip=0, limit=None
    )
    page = [public(info, store) for info in matching[skip : skip + limit]]
    return FeatureList(features=page, total=len(matching), skip=skip, limit=limit)


@router.get(
    "/{name}",
    response_model=FeatureInfo,
    responses={304: {"description": "Not modified (If-None-Match)"}, 404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="One feature (as get_feature), with an ETag",
)
async def get_feature(
    name: NamePath,
    request: Request,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    answers: FeatureResponses = request.app.state.feature_responses
    # A kept answer is a marker read and a dictionary probe: no hop to the thread pool.
    answer = answers.kept(name) if answers.local else None
    if answer is None:
        answer = await run_in_threadpool(answers.answer, name)
    if _matches(if_none_match, answer.etag):
        return Response(status_code=304, headers={"ETag": answer.etag})
    return Response(answer.body, media_type="application/json", headers={"ETag": answer.etag})


@router.put(
    "/{name}",
    response_model=FeatureInfo,
    responses={
        **ERRORS,
        412: {"model": ErrorBody, "description": "If-Match does not match the current ETag"},
    },
    dependencies=[WriteAccess],
    summary="Update a feature's fields (writes the file, registers the new version)",
)
def update_feature(
    name: NamePath,
    update: FeatureUpdate,
    store: Store,
    if_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    current = store.get_feature(name)
    if if_match is not None:
        etag = etag_of(public(current, store).model_dump_json().encode())
        if not _matches(if_match, etag):
            raise ApiError(412, f"feature '{name}' changed since that ETag (now {etag})")
    changes = update.model_dump(mode="json", exclude_unset=True)
    controls = ("version", "changelog", "allow_breaking")
    options = {k: changes.pop(k) for k in controls if k in changes}
    breaking = changes.pop("breaking_changes", None)
    target = changes.get("status")
    if target is not None and target == current.status.value:
        changes.pop("status")
    elif "status" in changes:
        operation = _status_operation(store, name, current.status.value, target)
        if not (set(changes) - {"status"}) and not breaking and "version" not in options:
            method = getattr(store, f"{operation}_feature")
            info = method(name, changelog=options.get("changelog"))
            return feature_response(public(info, store))
    if breaking:
        store.create_version(name, breaking_changes=True, **options, **changes)
    else:
        store.update_feature(name, **options, **changes)
    return feature_response(public(store.get_feature(name), store))


def _status_operation(store, name: str, current: str, target: Any) -> str:
    """The lifecycle operation a status change in a PUT means, with that operation's guards
    checked before anything is written."""
    operation = OPERATION_TO.get(target)
    allowed = TRANSITIONS[operation][0] if operation else set()
    if current not in allowed:
        raise TransitionError(
            f"feature '{name}' is {current}: status cannot change to {target} (allowed:"
            f" {', '.join(_reachable(current)) or 'none'}; field 'status')"
        )
    blocking, _ = blocking_downstream(store.graph, name, operation)
    if blocking:
        raise TransitionError(
            f"cannot {operation} feature '{name}' (field 'status'): downstream feature(s)"
            f" {', '.join(blocking)} depend on it"
        )
    return operation


def _reachable(current: str) -> list[str]:
    return sorted(t for t, op in OPERATION_TO.items() if current in TRANSITIONS[op][0])


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: ERRORS[404], 409: ERRORS[409]},
    dependencies=[WriteAccess],
    summary="Soft delete: archive the feature (its history stays)",
)
def delete_feature(name: NamePath, store: Store) -> Response:
    store.delete_feature(name)
    return Response(status_code=204)


@router.post(
    "/{name}/activate",
    response_model=FeatureInfo,
    responses={404: ERRORS[404], 409: ERRORS[409]},
    dependencies=[WriteAccess],
    summary="draft -> active",
)
def activate_feature(
    name: NamePath,
    store: Store,
    changelog: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    return feature_response(public(store.activate_feature(name, changelog=changelog), store))


@router.post(
    "/{name}/deprecate",
    response_model=FeatureInfo,
    responses={404: ERRORS[404], 409: ERRORS[409]},
    dependencies=[WriteAccess],
    summary="active -> deprecated (refused while active downstream features exist)",
)
def deprecate_feature(
    name: NamePath,
    store: Store,
    changelog: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    return feature_response(public(store.deprecate_feature(name, changelog=changelog), store))
