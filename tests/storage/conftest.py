"""Lakes on both catalogs: a SQLite file, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import pytest

from tests.conftest import temporary_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def lake_env(request, tmp_path, monkeypatch) -> dict[str, str]:
    """``store_env`` with the lake's catalog on SQLite or on PostgreSQL (set for this process
    too, so the CLI runner and the library see the same store)."""
    env = {
        "FEATURESTORE_DEFINITIONS": str(tmp_path / "feature_definitions"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{tmp_path / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(tmp_path / "lake"),
        "FEATURESTORE_BOOTSTRAP": "",
    }
    (tmp_path / "feature_definitions").mkdir(exist_ok=True)
    if request.param == "postgres":
        with temporary_postgres_database("fs_lake") as url:
            env["FEATURESTORE_LAKE_CATALOG"] = url
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            yield env
        return
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
