"""Malformed requests: each one a 4xx with a JSON ``detail`` naming the field, and nothing
written (definition files, registered versions and usage records unchanged)."""

from __future__ import annotations

import json

import pytest

from featurestore_dagster.store import FeatureStore
from tests.api.conftest import close_price, definitions_state, derived, make_project, serving


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("bad_input"))
    with serving(project) as server, server.client() as http:
        http.post("/features", json=close_price("bi_close")).raise_for_status()
        http.post("/features", json=derived("bi_double", "bi_close")).raise_for_status()
        yield server


def sql_feature(code: str, **overrides) -> dict:
    payload = close_price("bi_new", **overrides)
    payload["transformation"] = {"transformation_type": "sql", "code": code}
    return payload


USAGE = {
    "feature_name": "bi_close",
    "used_by_model": "m",
    "model_version": "1.0.0",
    "environment": "production",
}
RUN = {
    "used_by_model": "m",
    "model_version": "1",
    "environment": "dev",
    "features": {"bi_close": 1},
}

# (id, method, path, body (dict -> JSON, str -> raw text), expected status, text in detail)
CASES = [
    (
        "type feature_type",
        "post",
        "/features",
        close_price("bi_new", feature_type=3),
        422,
        "feature_type",
    ),
    ("type tags", "post", "/features", close_price("bi_new", tags="price"), 422, "tags"),
    (
        "type rule",
        "post",
        "/features",
        close_price(
            "bi_new", validation_rules=[{"rule_type": "range", "parameters": {"min": "low"}}]
        ),
        422,
        "validation_rules",
    ),
    (
        "unknown field",
        "post",
        "/features",
        {**close_price("bi_new"), "colour": "red"},
        422,
        "colour",
    ),
    (
        "unknown transformation field",
        "post",
        "/features",
        {**close_price("bi_new"), "transformation": {"code": "SELECT 1", "language": "sql"}},
        422,
        "language",
    ),
    ("name traversal", "post", "/features", close_price("../../etc/passwd"), 422, "feature_name"),
    ("name upper", "post", "/features", close_price("Bad-Name"), 422, "feature_name"),
    ("name long", "post", "/features", close_price("a" * 64), 422, "feature_name"),
    ("name empty", "post", "/features", close_price(""), 422, "feature_name"),
    (
        "table traversal",
        "post",
        "/features",
        close_price("bi_new", duckdb_table="../../x"),
        422,
        "duckdb_table",
    ),
    (
        "source path",
        "post",
        "/features",
        close_price("bi_new", sources=["/etc/passwd"]),
        422,
        "sources",
    ),
    (
        "inline python",
        "post",
        "/features",
        {
            **close_price("bi_new"),
            "transformation": {
                "transformation_type": "python",
                "code": "__import__('os').system('touch /tmp/pwned')",
            },
        },
        422,
        "transformation",
    ),
    (
        "undeclared table",
        "post",
        "/features",
        sql_feature("SELECT symbol, date, close AS bi_new FROM raw.secrets"),
        422,
        "raw.secrets",
    ),
    (
        "undeclared file",
        "post",
        "/features",
        sql_feature("SELECT symbol, date, 1.0 AS bi_new FROM read_csv('/etc/passwd')"),
        422,
        "/etc/passwd",
    ),
    (
        "two statements",
        "post",
        "/features",
        sql_feature("SELECT symbol, date, close AS bi_new FROM raw.prices; DROP TABLE raw.prices"),
        422,
        "transformation",
    ),
    (
        "not a select",
        "post",
        "/features",
        sql_feature("DELETE FROM raw.prices"),
        422,
        "transformation",
    ),
    ("bad cron", "post", "/features", close_price("bi_new", schedule="every day"), 422, "schedule"),
    (
        "version not semver",
        "post",
        "/features",
        close_price("bi_new", version="1.0"),
        422,
        "version",
    ),
    (
        "create archived",
        "post",
        "/features",
        close_price(
            "bi_new", status="archived", transformation={"code": "SELECT anything FROM anywhere"}
        ),
        422,
        "status",
    ),
    ("exists", "post", "/features", close_price("bi_close"), 409, "already exists"),
    (
        "upstream missing",
        "post",
        "/features",
        derived("bi_new", "bi_nowhere"),
        422,
        "upstream_features",
    ),
    ("put rename", "put", "/features/bi_close", {"feature_name": "bi_other"}, 422, "feature_name"),
    ("put type", "put", "/features/bi_close", {"tags": [1, 2]}, 422, "tags"),
    (
        "put version not semver",
        "put",
        "/features/bi_close",
        {"description": "x", "version": "v2"},
        422,
        "version",
    ),
    (
        "put version not above",
        "put",
        "/features/bi_close",
        {"description": "x", "version": "1.0.0"},
        409,
        "version",
    ),
    ("put clears required", "put", "/features/bi_close", {"data_type": None}, 422, "data_type"),
    (
        "put inline python",
        "put",
        "/features/bi_close",
        {"transformation": {"transformation_type": "python", "code": "import os"}},
        422,
        "transformation",
    ),
    (
        "put undeclared table",
        "put",
        "/features/bi_double",
        {"transformation": {"code": "SELECT symbol, date, close AS bi_double FROM raw.prices"}},
        422,
        "raw.prices",
    ),
    ("put path traversal", "put", "/features/..%2F..%2Fetc", {"description": "x"}, 404, ""),
    ("put bad name", "put", "/features/Bad.Name", {"description": "x"}, 422, "name"),
    ("version equal", "post", "/features/bi_close/versions", {"version": "1.0.0"}, 409, "1.0.0"),
    ("version below", "post", "/features/bi_close/versions", {"version": "0.9.0"}, 409, "0.9.0"),
    ("version bump level", "post", "/features/bi_close/versions", {"bump": "huge"}, 422, "bump"),
    (
        "version unknown field",
        "post",
        "/features/bi_close/versions",
        {"version": "2.0.0", "force": True},
        422,
        "force",
    ),
    (
        "rollback not semver",
        "post",
        "/features/bi_close/rollback?target_version=latest",
        None,
        422,
        "target_version",
    ),
    (
        "usage NaN",
        "post",
        "/features/usage",
        '{"feature_name": "bi_close", "used_by_model": "m", "model_version": "1", "environment": "dev", "feature_importance": NaN}',
        422,
        "feature_importance",
    ),
    (
        "usage Infinity",
        "post",
        "/features/usage",
        '{"feature_name": "bi_close", "used_by_model": "m", "model_version": "1", "environment": "dev", "correlation_with_target": Infinity}',
        422,
        "correlation_with_target",
    ),
    (
        "usage correlation range",
        "post",
        "/features/usage",
        {**USAGE, "correlation_with_target": 1.5},
        422,
        "correlation_with_target",
    ),
    (
        "usage negative importance",
        "post",
        "/features/usage",
        {**USAGE, "feature_importance": -0.1},
        422,
        "feature_importance",
    ),
    (
        "usage environment",
        "post",
        "/features/usage",
        {**USAGE, "environment": "prod"},
        422,
        "environment",
    ),
    ("usage unknown field", "post", "/features/usage", {**USAGE, "score": 1}, 422, "score"),
    (
        "usage version",
        "post",
        "/features/usage",
        {**USAGE, "feature_version": "7.0.0"},
        422,
        "7.0.0",
    ),
    (
        "usage version not semver",
        "post",
        "/features/usage",
        {**USAGE, "feature_version": "seven"},
        422,
        "feature_version",
    ),
    (
        "usage model text",
        "post",
        "/features/usage",
        {**USAGE, "used_by_model": "x" * 300},
        422,
        "used_by_model",
    ),
    (
        "run unknown feature",
        "post",
        "/features/usage",
        {**RUN, "features": {"bi_close": 1, "bi_none": 2}},
        404,
        "bi_none",
    ),
    (
        "run NaN",
        "post",
        "/features/usage",
        json.dumps({**RUN, "features": {"bi_close": float("nan")}}),
        422,
        "features",
    ),
    ("run empty", "post", "/features/usage", {**RUN, "features": {}}, 422, "features"),
    (
        "run correlation stray",
        "post",
        "/features/usage",
        {**RUN, "correlations": {"bi_double": 0.1}},
        422,
        "bi_double",
    ),
    ("run bad name", "post", "/features/usage", {**RUN, "features": {"../x": 1}}, 422, "features"),
    ("malformed JSON", "post", "/features", '{"feature_name": "bi_new", ', 422, "JSON"),
    ("JSON array", "post", "/features", "[1, 2, 3]", 422, "body"),
    ("JSON string", "post", "/features/usage", '"usage"', 422, "body"),
    ("empty body", "post", "/features", "", 422, "body"),
    (
        "huge body",
        "post",
        "/features",
        json.dumps({**close_price("bi_new"), "description": "x" * 2_000_000}),
        413,
        "too large",
    ),
    ("huge list limit", "get", "/features?limit=1000000", None, 422, "limit"),
    ("negative usage limit", "get", "/features/bi_close/usage?limit=0", None, 422, "limit"),
    (
        "recursive not bool",
        "get",
        "/features/bi_close/lineage?recursive=maybe",
        None,
        422,
        "recursive",
    ),
]


def registry_state(store: FeatureStore) -> tuple:
    versions = tuple(
        (v.feature_name, v.version, v.is_rolled_back)
        for name in ("bi_close", "bi_double")
        for v in store.get_feature_versions(name)
    )
    usage = tuple(store.get_feature_statistics(n).total_usage for n in ("bi_close", "bi_double"))
    return versions, usage, tuple(sorted(store.registry.feature_rows()))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_refused_and_nothing_is_written(seeded, case):
    _, method, path, body, code, text = case
    folder = seeded.project / "feature_definitions"
    store = FeatureStore(
        definitions_path=folder,
        registry_url=f"sqlite:///{seeded.project / '.featurestore' / 'registry.db'}",
    )
    before_files, before_registry = definitions_state(folder), registry_state(store)
    with seeded.client() as http:
        if isinstance(body, str):
            headers = {"Content-Type": "application/json"}
            response = http.request(method, path, content=body.encode(), headers=headers)
        else:
            response = http.request(method, path, json=body)
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail
    assert text in json.dumps(detail)
    assert definitions_state(folder) == before_files
    assert registry_state(store) == before_registry
