"""Versions, rollback, lineage, usage and statistics routes, plus the plan."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from featurestore_dagster.api.deps import NamePath, ReadAccess, Store, WriteAccess
from featurestore_dagster.api.errors import ApiError
from featurestore_dagster.api.features import ERRORS
from featurestore_dagster.api.schemas import (
    MaterializationList,
    SemVer,
    UsageHistory,
    UsageIn,
    UsageRecorded,
    VersionCreate,
    VersionList,
)
from featurestore_dagster.models import FeatureVersion
from featurestore_dagster.usage.models import FeatureLineage, FeatureStatistics
from featurestore_dagster.versioning.plan import Plan

router = APIRouter(tags=["versions and usage"])


@router.post(
    "/features/usage",
    status_code=status.HTTP_201_CREATED,
    response_model=UsageRecorded,
    responses={404: ERRORS[404], 422: ERRORS[422]},
    dependencies=[WriteAccess],
    summary="Record usage: one record, or one model run's features (atomic)",
)
async def record_usage(usage: UsageIn, request: Request) -> Response:
    """Written by the worker's group-commit thread (``api.usage_writer``): answered once
    the transaction holding it committed."""
    item = usage.model_dump(exclude_none=True)
    size = len(item["features"]) if "features" in item else 1
    result = await request.app.state.usage_writer.record([item], size)
    body = UsageRecorded(
        records_written=result.records_written, features=result.features, records=result.records
    )
    # Serialized once here: the hot write path skips FastAPI's second validation pass.
    return Response(body.model_dump_json(), status_code=201, media_type="application/json")


@router.post(
    "/features/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureVersion,
    responses=ERRORS,
    dependencies=[WriteAccess],
    summary="Register a new version (writes the definition file)",
)
def create_version(name: NamePath, request: VersionCreate, store: Store) -> FeatureVersion:
    fields = request.model_dump(mode="json", exclude_unset=True)
    return store.create_version(name, **fields)


@router.get(
    "/features/{name}/versions",
    response_model=VersionList,
    responses={404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="Registered versions, newest first",
)
def get_versions(name: NamePath, store: Store) -> VersionList:
    versions = store.get_feature_versions(name)
    return VersionList(feature_name=name, versions=versions, total=len(versions))


@router.post(
    "/features/{name}/rollback",
    response_model=FeatureVersion,
    responses=ERRORS,
    dependencies=[WriteAccess],
    summary="Restore a version's transformation, rules and schema as a new version",
)
def rollback(
    name: NamePath,
    store: Store,
    target_version: Annotated[SemVer, Query(description="The registered version to restore.")],
    changelog: Annotated[str | None, Query(max_length=2000)] = None,
    allow_breaking: bool = False,
) -> FeatureVersion:
    versions = store.get_feature_versions(name)
    if target_version not in {v.version for v in versions}:
        known = ", ".join(v.version for v in versions) or "none"
        raise ApiError(
            404,
            f"feature '{name}' has no registered version {target_version} (field"
            f" 'target_version'; registered: {known})",
        )
    return store.rollback_version(
        name, to_version=target_version, changelog=changelog, allow_breaking=allow_breaking
    )


@router.get(
    "/features/{name}/lineage",
    response_model=FeatureLineage,
    responses={404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="Upstream and downstream features (as get_feature_lineage)",
)
def lineage(name: NamePath, store: Store, recursive: bool = False) -> FeatureLineage:
    return store.get_feature_lineage(name, recursive=recursive)


@router.get(
    "/features/{name}/statistics",
    response_model=FeatureStatistics,
    responses={404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="Usage statistics (as get_feature_statistics)",
)
def statistics(name: NamePath, store: Store) -> FeatureStatistics:
    return store.get_feature_statistics(name)


@router.get(
    "/features/{name}/usage",
    response_model=UsageHistory,
    responses={404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="Usage records, newest first",
)
def usage_history(
    name: NamePath, store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> UsageHistory:
    records = store.get_feature_usage_history(name, limit=limit)
    return UsageHistory(feature_name=name, records=records, total=len(records))


@router.get(
    "/features/{name}/materializations",
    response_model=MaterializationList,
    responses={404: ERRORS[404]},
    dependencies=[ReadAccess],
    summary="Latest recorded builds, newest first",
)
def materializations(
    name: NamePath, store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> MaterializationList:
    store.get_feature(name)  # 404 for an unknown name
    items = store.materializations(name, limit=limit)
    return MaterializationList(feature_name=name, materializations=items, total=len(items))


@router.get(
    "/plan",
    response_model=Plan,
    dependencies=[ReadAccess],
    tags=["plan"],
    summary="Compare every definition with the registry (as featurestore plan)",
)
def plan(store: Store) -> Plan:
    return store.plan()
