"""Concurrent clients against two worker processes: usage posts lose nothing and edits of
one definition serialize on the definitions lock (SQLite and PostgreSQL registries)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.conftest import close_price, make_project, server_env, serving
from tests.conftest import temporary_postgres_database

THREADS = 8
POSTS_PER_THREAD = 15
FEATURES = ["cc_a", "cc_b", "cc_c"]


@pytest.fixture(params=["sqlite", "postgres"])
def registry_env(request):
    if request.param == "sqlite":
        yield {}
        return
    with temporary_postgres_database("fs_api") as url:
        yield {"FEATURESTORE_REGISTRY_URL": url}


def test_concurrent_usage_posts_and_edits(tmp_path, registry_env):
    project = make_project(tmp_path)
    with serving(project, "--workers", "2", env=server_env(**registry_env)) as server:
        with server.client() as http:
            for name in FEATURES:
                http.post("/features", json=close_price(name)).raise_for_status()

        def post_usage(thread: int) -> list[int]:
            codes = []
            with server.client() as http:
                for index in range(POSTS_PER_THREAD):
                    run = {
                        "used_by_model": f"model_{thread}",
                        "model_version": "1.0.0",
                        "environment": "production",
                        "features": {name: 0.1 for name in FEATURES},
                        "execution_id": f"{thread}-{index}",
                    }
                    codes.append(http.post("/features/usage", json=run).status_code)
            return codes

        def post_bad(thread: int) -> list[int]:
            # Refused posts grouped with good ones in one transaction: only they fail.
            bad = [
                {"feature_name": "cc_a", "feature_version": "9.9.9"},
                {"feature_name": "cc_b", "correlation_with_target": 7},
                {"feature_name": "cc_nope"},
            ]
            common = {"used_by_model": "bad", "model_version": "1", "environment": "dev"}
            with server.client() as http:
                return [
                    http.post("/features/usage", json={**common, **bad[i % 3]}).status_code
                    for i in range(POSTS_PER_THREAD)
                ]

        def edit(index: int) -> int:
            with server.client() as http:
                body = {"description": f"edit {index}"}
                return http.put("/features/cc_a", json=body).status_code

        with ThreadPoolExecutor(THREADS + 6) as pool:
            usage = [pool.submit(post_usage, t) for t in range(THREADS)]
            refused = [pool.submit(post_bad, t) for t in range(2)]
            edits = [pool.submit(edit, i) for i in range(4)]
            codes = [code for future in usage for code in future.result()]
            bad_codes = [code for future in refused for code in future.result()]
            edit_codes = [future.result() for future in edits]

        assert codes == [201] * (THREADS * POSTS_PER_THREAD)
        assert sorted(set(bad_codes)) == [404, 422] and bad_codes.count(404) == 10
        assert edit_codes == [200] * 4
        expected = THREADS * POSTS_PER_THREAD
        with server.client() as http:
            for name in FEATURES:
                stats = http.get(f"/features/{name}/statistics").json()
                assert stats["total_usage"] == expected, name
                assert stats["usage_count"] == expected, name
                assert stats["unique_models"] == THREADS
            versions = http.get("/features/cc_a/versions").json()["versions"]
            assert [v["version"] for v in versions] == ["1.0.4", "1.0.3", "1.0.2", "1.0.1", "1.0.0"]
            final = http.get("/features/cc_a").json()
        text = (project / "feature_definitions" / "cc_a.yaml").read_text()
        assert final["version"] == "1.0.4" and f"description: {final['description']}" in text
