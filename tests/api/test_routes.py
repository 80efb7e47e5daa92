"""The thirteen routes and the extras, over real HTTP against a real ``featurestore serve``:
each write shows up in the definition file and in the registry, read back independently."""

from __future__ import annotations

import yaml

from featurestore_dagster.store import FeatureStore
from tests.api.conftest import close_price, derived


def open_store(api) -> FeatureStore:
    """The server's project opened in this process (same files, same registry)."""
    root = api.project
    return FeatureStore(
        definitions_path=root / "feature_definitions",
        registry_url=f"sqlite:///{root / '.featurestore' / 'registry.db'}",
    )


def read_file(api, name: str) -> dict:
    return yaml.safe_load((api.project / "feature_definitions" / f"{name}.yaml").read_text())


def test_create_writes_the_file_and_registers(api, client):
    response = client.post("/features", json=close_price("cr_close"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["feature_name"] == "cr_close"
    assert body["current_version"] == "1.0.0" and body["registered"] is True
    assert body["definition_file"] == "cr_close.yaml"
    assert read_file(api, "cr_close")["sources"] == ["raw.prices"]
    assert [v.version for v in open_store(api).get_feature_versions("cr_close")] == ["1.0.0"]

    again = client.post("/features", json=close_price("cr_close"))
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_get_feature_with_etag(client):
    client.post("/features", json=close_price("et_close")).raise_for_status()
    client.post("/features", json=derived("et_double", "et_close")).raise_for_status()
    response = client.get("/features/et_close")
    assert response.status_code == 200
    body = response.json()
    assert body["downstream_features"] == ["et_double"]
    assert body["updated_at"] and body["created_at"] and body["usage_count"] == 0
    etag = response.headers["ETag"]
    assert client.get("/features/et_close", headers={"If-None-Match": etag}).status_code == 304
    missing = client.get("/features/et_nope")
    assert missing.status_code == 404 and "unknown feature" in missing.json()["detail"]


def test_list_filters_and_pages(client):
    for index in range(3):
        payload = close_price(f"ls_f{index}", owner="list-team", tags=["listed", f"n{index}"])
        client.post("/features", json=payload).raise_for_status()
    page = client.get("/features", params={"owner": "list-team", "limit": 2}).json()
    assert page["total"] == 3 and page["limit"] == 2
    assert [f["feature_name"] for f in page["features"]] == ["ls_f0", "ls_f1"]
    rest = client.get("/features", params={"owner": "list-team", "skip": 2}).json()
    assert [f["feature_name"] for f in rest["features"]] == ["ls_f2"]
    tagged = client.get("/features", params={"tags": "listed,n1"}).json()
    assert [f["feature_name"] for f in tagged["features"]] == ["ls_f1"]
    assert client.get("/features", params={"status": "nope"}).status_code == 422
    assert client.get("/features", params={"limit": 100_000}).status_code == 422
    assert client.get("/features", params={"skip": -1}).status_code == 422


def test_update_registers_the_smallest_version(api, client):
    client.post("/features", json=close_price("up_close")).raise_for_status()
    response = client.put("/features/up_close", json={"description": "Close, adjusted"})
    assert response.status_code == 200, response.text
    assert response.json()["current_version"] == "1.0.1"
    assert read_file(api, "up_close")["description"] == "Close, adjusted"

    code = "SELECT symbol, date, close * 1.0 AS up_close FROM raw.prices"
    changed = client.put("/features/up_close", json={"transformation": {"code": code}})
    assert changed.json()["current_version"] == "1.1.0"
    assert read_file(api, "up_close")["transformation"]["code"] == code

    stale = client.put("/features/up_close", json={"description": "x"}, headers={"If-Match": '"0"'})
    assert stale.status_code == 412
    too_small = client.put("/features/up_close", json={"description": "y", "version": "1.0.5"})
    assert too_small.status_code == 409 and "1.1.1" in too_small.json()["detail"]
    assert client.put("/features/up_nope", json={"description": "x"}).status_code == 404
    assert read_file(api, "up_close")["version"] == "1.1.0"


def test_update_status_keeps_the_lifecycle_guards(client):
    client.post("/features", json=close_price("st_close")).raise_for_status()
    client.post("/features", json=derived("st_double", "st_close", status="active"))
    refused = client.put("/features/st_close", json={"status": "deprecated"})
    assert refused.status_code == 409 and "st_double" in refused.json()["detail"]
    back = client.put("/features/st_close", json={"status": "draft"})
    assert back.status_code == 409 and "status" in back.json()["detail"]
    both = client.put("/features/st_double", json={"status": "deprecated", "description": "old"})
    assert both.status_code == 200, both.text
    assert both.json()["status"] == "deprecated" and both.json()["description"] == "old"


def test_lifecycle_routes(api, client):
    client.post("/features", json=close_price("lc_close", status="draft")).raise_for_status()
    client.post("/features", json=derived("lc_double", "lc_close", status="draft"))
    activated = client.post("/features/lc_close/activate")
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert read_file(api, "lc_close")["status"] == "active"
    assert client.post("/features/lc_close/activate").status_code == 409
    client.post("/features/lc_double/activate").raise_for_status()
    guarded = client.post("/features/lc_close/deprecate")
    assert guarded.status_code == 409 and "lc_double" in guarded.json()["detail"]
    assert client.delete("/features/lc_close").status_code == 409

    assert client.post("/features/lc_double/deprecate").status_code == 200
    deleted = client.delete("/features/lc_double")
    assert deleted.status_code == 204 and deleted.content == b""
    assert read_file(api, "lc_double")["status"] == "archived"
    assert client.delete("/features/lc_close").status_code == 204
    assert client.post("/features/lc_none/activate").status_code == 404
    assert client.delete("/features/lc_none").status_code == 404


def test_versions_and_rollback(api, client):
    client.post("/features", json=close_price("vr_close")).raise_for_status()
    new = client.post("/features/vr_close/versions", json={"version": "2.0.0", "changelog": "Big"})
    assert new.status_code == 201, new.text
    assert new.json()["version"] == "2.0.0" and new.json()["changelog"] == "Big"
    code = "SELECT symbol, date, close * 2 AS vr_close FROM raw.prices"
    data = client.post("/features/vr_close/versions", json={"transformation": {"code": code}})
    assert data.json()["version"] == "2.1.0" and data.json()["change_category"] == "data"
    assert client.post("/features/vr_close/versions", json={"version": "2.0.1"}).status_code == 409
    assert client.post("/features/vr_close/versions", json={"version": "two"}).status_code == 422

    listed = client.get("/features/vr_close/versions").json()
    assert listed["total"] == 3
    assert [v["version"] for v in listed["versions"]] == ["2.1.0", "2.0.0", "1.0.0"]

    rolled = client.post("/features/vr_close/rollback", params={"target_version": "1.0.0"})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["restored_from"] == "1.0.0" and rolled.json()["version"] == "2.2.0"
    assert "close AS vr_close" in read_file(api, "vr_close")["transformation"]["code"]
    versions = {v.version: v for v in open_store(api).get_feature_versions("vr_close")}
    assert versions["2.1.0"].is_rolled_back and versions["2.1.0"].rolled_back_at is not None
    unknown = client.post("/features/vr_close/rollback", params={"target_version": "9.9.9"})
    assert unknown.status_code == 404 and "target_version" in unknown.json()["detail"]
    assert client.post("/features/vr_close/rollback").status_code == 422
    assert client.get("/features/vr_none/versions").status_code == 404


def test_lineage(client):
    client.post("/features", json=close_price("ln_a")).raise_for_status()
    client.post("/features", json=derived("ln_b", "ln_a")).raise_for_status()
    client.post("/features", json=derived("ln_c", "ln_b")).raise_for_status()
    direct = client.get("/features/ln_a/lineage").json()
    assert direct["downstream_features"] == ["ln_b"] and direct["all_downstream"] == []
    assert direct["direct_dependents_count"] == 1 and direct["total_dependents_count"] == 2
    full = client.get("/features/ln_c/lineage", params={"recursive": "true"}).json()
    assert full["all_upstream"] == ["ln_a", "ln_b"] and full["current_version"] == "1.0.0"
    assert client.get("/features/ln_none/lineage").status_code == 404


def test_usage_record_model_run_statistics_and_history(api, client):
    client.post("/features", json=close_price("us_a")).raise_for_status()
    client.post("/features", json=close_price("us_b")).raise_for_status()
    one = {
        "feature_name": "us_a",
        "used_by_model": "ranker",
        "model_version": "1.0.0",
        "environment": "production",
        "feature_importance": 0.3,
        "correlation_with_target": -0.2,
    }
    recorded = client.post("/features/usage", json=one)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["records_written"] == 1
    assert recorded.json()["records"][0]["feature_version"] == "1.0.0"
    run = {
        "used_by_model": "ranker",
        "model_version": "1.1.0",
        "environment": "staging",
        "features": {"us_a": 0.5, "us_b": 0.1},
        "correlations": {"us_b": 0.4},
        "execution_id": "run-1",
    }
    batch = client.post("/features/usage", json=run)
    assert batch.status_code == 201 and batch.json()["records_written"] == 2

    stats = client.get("/features/us_a/statistics").json()
    assert stats["total_usage"] == 2 and stats["unique_models"] == 1
    assert sorted(stats["environments"]) == ["production", "staging"]
    assert abs(stats["avg_importance"] - 0.4) < 1e-9
    assert stats["last_used_at"] is not None
    history = client.get("/features/us_a/usage", params={"limit": 1}).json()
    assert history["total"] == 1 and history["records"][0]["execution_id"] == "run-1"
    assert open_store(api).get_feature_statistics("us_b").total_usage == 1

    assert (
        client.post("/features/usage", json={**one, "feature_name": "us_none"}).status_code == 404
    )
    bad_run = {**run, "features": {"us_a": 0.5, "us_b": 0.2, "us_none": 0.1}}
    assert client.post("/features/usage", json=bad_run).status_code == 404
    assert open_store(api).get_feature_statistics("us_a").total_usage == 2
    assert client.get("/features/us_none/statistics").status_code == 404


def test_materializations_plan_and_health(api, client):
    client.post("/features", json=close_price("pl_close")).raise_for_status()
    built = client.get("/features/pl_close/materializations")
    assert built.status_code == 200 and built.json() == {
        "feature_name": "pl_close",
        "materializations": [],
        "total": 0,
    }
    assert client.get("/features/pl_none/materializations").status_code == 404
    plan = client.get("/plan").json()
    assert {"pl_close": "unchanged"}.items() <= {
        f["feature_name"]: f["change"] for f in plan["features"]
    }.items()
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["features"] >= 1


def test_openapi_document_has_every_route_with_a_response_model(api, client):
    import httpx

    document = httpx.get(f"{api.url}/openapi.json").json()
    paths = document["paths"]
    expected = {
        ("post", "/api/v1/features"),
        ("get", "/api/v1/features"),
        ("get", "/api/v1/features/{name}"),
        ("put", "/api/v1/features/{name}"),
        ("delete", "/api/v1/features/{name}"),
        ("post", "/api/v1/features/{name}/activate"),
        ("post", "/api/v1/features/{name}/deprecate"),
        ("post", "/api/v1/features/{name}/versions"),
        ("get", "/api/v1/features/{name}/versions"),
        ("post", "/api/v1/features/{name}/rollback"),
        ("get", "/api/v1/features/{name}/lineage"),
        ("post", "/api/v1/features/usage"),
        ("get", "/api/v1/features/{name}/statistics"),
        ("get", "/api/v1/features/{name}/usage"),
        ("get", "/api/v1/features/{name}/materializations"),
        ("get", "/api/v1/plan"),
    }
    found = {(method, path) for path, item in paths.items() for method in item}
    assert expected <= found
    for method, path in expected:
        operation = paths[path][method]
        success = next(code for code in operation["responses"] if code.startswith("2"))
        if success != "204":
            schema = operation["responses"][success]["content"]["application/json"]["schema"]
            assert "$ref" in schema or schema.get("type") == "object", (method, path)
    assert httpx.get(f"{api.url}/docs").status_code == 200


def test_edits_from_other_processes_are_seen(api, client):
    import time

    client.post("/features", json=close_price("ot_close")).raise_for_status()
    client.get("/features/ot_close").raise_for_status()  # the server now holds this graph
    open_store(api).update_feature("ot_close", description="edited elsewhere")
    # A write right after sees the files as they are (no stale-graph refusal).
    response = client.put("/features/ot_close", json={"tags": ["price", "edited"]})
    assert response.status_code == 200, response.text
    assert response.json()["current_version"] == "1.0.2"
    assert response.json()["description"] == "edited elsewhere"
    # A read sees a hand edit within about a second.
    path = api.project / "feature_definitions" / "ot_close.yaml"
    path.write_text(path.read_text().replace("edited elsewhere", "edited by hand"))
    deadline = time.monotonic() + 10
    while client.get("/features/ot_close").json()["description"] != "edited by hand":
        assert time.monotonic() < deadline
        time.sleep(0.2)
