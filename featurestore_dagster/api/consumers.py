"""Training sets and latest values over HTTP: JSON rows in; JSON, or Arrow IPC when the
client accepts ``application/vnd.apache.arrow.stream``, out.

The spine is plain JSON rows (never a SQL string or a table name: a client only reads
features). Its label-time column is turned into DATE (``"2024-01-05"``) or TIMESTAMP values
(ISO 8601; with ``Z`` or an offset, UTC) before ``FeatureStore.get_training_set`` sees it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from featurestore_dagster.api.deps import ReadAccess, Store, WriteAccess
from featurestore_dagster.api.errors import ApiError
from featurestore_dagster.api.features import ERRORS
from featurestore_dagster.api.schemas import Body, ShortText
from featurestore_dagster.api.served import relaxed_graph
from featurestore_dagster.definitions.models import DURATION_PATTERN, IDENTIFIER_PATTERN
from featurestore_dagster.errors import UnknownFeatureError
from featurestore_dagster.usage.models import Environment

ARROW = "application/vnd.apache.arrow.stream"
MANIFEST_HEADER = "X-Featurestore-Manifest"
ID_HEADER = "X-Featurestore-Training-Set-Id"
MAX_SPINE_ROWS = 1_000_000
MAX_ENTITY_ROWS = 10_000
INLINE_LOOKUP_CELLS = 256  # entity rows x features answered on the event loop at most

Column = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=63)]
FeatureRequest = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}(@\d+(\.\d+\.\d+([-+][0-9A-Za-z.-]+)?)?)?$"),
]
FeatureName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
Scalar = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None
Row = dict[Column, Scalar]
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)

router = APIRouter(tags=["training sets and latest values"])


class TrainingSetRequest(Body):
    """``POST /training-sets``: a point-in-time training set for the spine's rows."""

    spine: list[Row] = Field(min_length=1, max_length=MAX_SPINE_ROWS)
    features: list[FeatureRequest] | None = Field(None, min_length=1, max_length=500)
    timestamp_column: Column | None = None
    ttl: Duration | dict[FeatureName, Duration] | None = None
    model: ShortText | None = None
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    environment: Environment | None = None
    label_column: Column | None = None
    allow_lookahead: bool = False
    manifest: dict[str, Any] | ShortText | None = Field(
        None, description="A stored manifest (or its training set id) to rebuild exactly."
    )


class TrainingSetResponse(BaseModel):
    training_set_id: str
    manifest: dict[str, Any]
    columns: list[str]
    num_rows: int
    rows: list[dict[str, Any]]


class OnlineRequest(Body):
    """``POST /online-features``: the latest value of each feature per entity row."""

    entity_rows: list[Row] = Field(min_length=1, max_length=MAX_ENTITY_ROWS)
    features: list[FeatureName] = Field(min_length=1, max_length=500)
    ttl: Duration | dict[FeatureName, Duration] | None = None


class OnlineResponse(BaseModel):
    features: list[str]
    rows: list[dict[str, Any]]


def spine_table(rows: list[dict[str, Any]], timestamp_column: str | None) -> pa.Table:
    """JSON rows -> Arrow, with the label-time column as DATE or TIMESTAMP values."""
    columns = list(rows[0])
    for index, row in enumerate(rows):
        if list(row) != columns and set(row) != set(columns):
            raise ApiError(
                422,
                f"spine row {index} has columns {sorted(row)}, row 0 has {sorted(columns)}"
                " (field 'spine')",
            )
    data = {name: [row.get(name) for row in rows] for name in columns}
    target = timestamp_column or _guess_time_column(data)
    if target is not None and target in data:
        data[target] = _times(data[target], target)
    try:
        return pa.table(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ApiError(422, f"spine columns of mixed types (field 'spine'): {error}") from None


def _guess_time_column(data: dict[str, list[Any]]) -> str | None:
    if "event_timestamp" in data:
        return "event_timestamp"
    candidates = [
        name
        for name, values in data.items()
        if any(v is not None for v in values)
        and all(v is None or (isinstance(v, str) and _ISO.match(v)) for v in values)
    ]
    return candidates[0] if len(candidates) == 1 else None


def _times(values: list[Any], column: str) -> list[Any]:
    """ISO strings -> dates (all ``YYYY-MM-DD``) or datetimes (naive, or all UTC)."""
    if not all(v is None or (isinstance(v, str) and _ISO.match(v)) for v in values):
        bad = next(v for v in values if not (v is None or (isinstance(v, str) and _ISO.match(v))))
        raise ApiError(
            422,
            f"spine column '{column}' must hold ISO 8601 dates or timestamps, got {bad!r}"
            " (field 'spine')",
        )
    try:
        if all(v is None or len(v) == 10 for v in values):
            return [None if v is None else dt.date.fromisoformat(v) for v in values]
        parsed = [None if v is None else dt.datetime.fromisoformat(v) for v in values]
    except ValueError as error:
        raise ApiError(422, f"spine column '{column}': {error} (field 'spine')") from None
    aware = {p.tzinfo is not None for p in parsed if p is not None}
    if aware == {True}:
        return [None if p is None else p.astimezone(dt.UTC) for p in parsed]
    if aware == {True, False}:
        raise ApiError(
            422, f"spine column '{column}' mixes timestamps with and without a UTC offset"
        )
    return parsed


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "as_tuple"):  # Decimal
        return float(value)
    return value


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def arrow_stream(table: pa.Table, metadata: dict[str, str] | None = None) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def wants_arrow(accept: str | None) -> bool:
    return bool(accept) and ARROW in accept.lower()


ARROW_RESPONSE = {"content": {ARROW: {"schema": {"type": "string", "format": "binary"}}}}


@router.post(
    "/training-sets",
    response_model=TrainingSetResponse,
    responses={200: ARROW_RESPONSE, **ERRORS},
    dependencies=[WriteAccess],
    summary="Point-in-time training set for JSON spine rows (JSON or Arrow IPC)",
)
def training_set(
    request: TrainingSetRequest,
    store: Store,
    accept: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The values of each feature as of each spine row's time, with the manifest (also in
    the ``X-Featurestore-Manifest`` header and, for Arrow, the schema metadata). Writes the
    manifest (and, with ``model``, usage records), hence the write role."""
    spine = spine_table(request.spine, request.timestamp_column)
    ts = store.get_training_set(
        spine,
        features=request.features,
        timestamp_column=request.timestamp_column,
        ttl=request.ttl,
        model=request.model,
        model_version=request.model_version,
        environment=request.environment.value if request.environment else None,
        label_column=request.label_column,
        allow_lookahead=request.allow_lookahead,
        manifest=request.manifest,
    )
    manifest = json.loads(json.dumps(ts.manifest, default=str))
    compact = json.dumps(manifest, separators=(",", ":"), ensure_ascii=True)
    headers = {ID_HEADER: ts.training_set_id, MANIFEST_HEADER: compact}
    table = ts.to_arrow()
    if wants_arrow(accept):
        body = arrow_stream(table, {"featurestore.manifest": compact})
        return Response(body, media_type=ARROW, headers=headers)
    result = TrainingSetResponse(
        training_set_id=ts.training_set_id,
        manifest=manifest,
        columns=table.column_names,
        num_rows=table.num_rows,
        rows=json_rows(table),
    )
    return Response(result.model_dump_json(), media_type="application/json", headers=headers)


@router.post(
    "/online-features",
    response_model=OnlineResponse,
    responses={200: ARROW_RESPONSE, **ERRORS},
    dependencies=[ReadAccess],
    summary="Latest value (and its time) of each feature per entity row",
)
async def online_features(
    request: OnlineRequest,
    store: Store,
    accept: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    # A small lookup whose latest tables are in memory is answered on the event loop (a
    # fraction of a millisecond, no hop to the thread pool); others in the thread pool.
    cells = len(request.entity_rows) * len(request.features)
    if cells <= INLINE_LOOKUP_CELLS and store.latest_values_in_memory(request.features):
        return _online_features(request, store, accept)
    return await run_in_threadpool(_online_features, request, store, accept)


def _online_features(request: OnlineRequest, store, accept: str | None) -> Response:
    try:
        entities = pa.Table.from_pylist(request.entity_rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ApiError(422, f"entity_rows of mixed types (field 'entity_rows'): {error}") from None
    try:
        result = store.get_online_features(entities, request.features, ttl=request.ttl)
    except UnknownFeatureError:  # maybe created a moment ago: look at the files again
        with relaxed_graph(False):
            result = store.get_online_features(entities, request.features, ttl=request.ttl)
    table = result.to_arrow()
    if wants_arrow(accept):
        return Response(arrow_stream(table), media_type=ARROW)
    body = OnlineResponse(features=list(result.features), rows=json_rows(table))
    return Response(body.model_dump_json(), media_type="application/json")
