"""Shared fixtures. Keep additive: each module's own fixtures live in its test file."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def base_definition(**overrides: Any) -> dict[str, Any]:
    """A valid definition payload (a daily close reading raw.prices); override any field."""
    data: dict[str, Any] = {
        "feature_name": "close_price",
        "version": "1.0.0",
        "feature_type": "raw",
        "data_type": "float",
        "status": "active",
        "description": "Daily close",
        "owner": "quant-team",
        "tags": ["price"],
        "entity_columns": ["symbol"],
        "timestamp_column": "date",
        "sources": ["raw.prices"],
        "transformation": {
            "transformation_type": "sql",
            "code": "SELECT symbol, date, close AS close_price FROM raw.prices",
        },
        "validation_rules": [
            {"rule_type": "range", "parameters": {"min": 0}, "is_blocking": True},
        ],
        "changelog": "Initial version",
    }
    data.update(copy.deepcopy(overrides))
    return data


def double_price_definition(**overrides: Any) -> dict[str, Any]:
    """``double_price``: twice ``close_price`` (of ``base_definition``), a derived feature
    reading it; override any field."""
    payload = base_definition(
        feature_name="double_price",
        feature_type="derived",
        upstream_features=["close_price"],
        sources=[],
        transformation={
            "code": "SELECT symbol, date, close_price * 2 AS double_price FROM features.close_price"
        },
    )
    payload.update(copy.deepcopy(overrides))
    return payload


@pytest.fixture
def make_definition():
    """Factory: ``make_definition(feature_name="x", ...)`` -> a definition payload dict."""
    return base_definition


class DefinitionsFolder:
    """A ``feature_definitions/`` folder in a temporary project, written one file per feature."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "feature_definitions"
        self.path.mkdir(parents=True, exist_ok=True)

    def write(self, *payloads: dict[str, Any], name: str | None = None) -> Path:
        """Write payloads into one file (several -> a ``features:`` list)."""
        if not payloads:
            raise ValueError("nothing to write")
        filename = name or f"{payloads[0]['feature_name']}.yaml"
        document = payloads[0] if len(payloads) == 1 else {"features": list(payloads)}
        target = self.path / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        return target

    def write_text(self, filename: str, text: str) -> Path:
        target = self.path / filename
        target.write_text(text)
        return target


@pytest.fixture
def definitions_folder(tmp_path) -> DefinitionsFolder:
    return DefinitionsFolder(tmp_path)


@pytest.fixture
def store_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment pointing the store at files under ``tmp_path`` (also set for this process)."""
    env = {
        "FEATURESTORE_DEFINITIONS": str(tmp_path / "feature_definitions"),
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{tmp_path / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(tmp_path / "lake"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        # Empty: no bootstrap hook (the repo's pyproject names the example's data generator).
        "FEATURESTORE_BOOTSTRAP": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def lake_settings(env: dict[str, str]):
    """Settings of the lake (and registry) an environment like ``store_env`` points at."""
    from featurestore_dagster.config import Settings

    return Settings.load(
        definitions_path=env["FEATURESTORE_DEFINITIONS"],
        registry_url=env["FEATURESTORE_REGISTRY_URL"],
        lake_catalog=env["FEATURESTORE_LAKE_CATALOG"],
        lake_data=env["FEATURESTORE_LAKE_DATA"],
    )


def open_test_lake(env: dict[str, str], *, read_only: bool = False):
    """A DuckDB connection on the lake of ``env`` (the store's own ``open_lake``)."""
    from featurestore_dagster.storage.lake import open_lake

    return open_lake(lake_settings(env), read_only=read_only)


# --- usage and lineage (issue 4) -------------------------------------------------------------

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Registered versions of the usage fixture graph; the last one is current.
USAGE_VERSIONS = {
    "close_price": ["1.0.0", "1.1.0"],
    "daily_return": ["1.0.0"],
    "rsi_14d": ["1.0.0"],
    "momentum_signal": ["1.0.0"],
    "old_signal": ["1.0.0"],
}


def usage_payloads() -> list[dict[str, Any]]:
    """A small graph: close_price -> daily_return, rsi_14d -> momentum_signal; old_signal
    (deprecated) and draft_feature (never registered) hang off close_price."""

    def derived(name: str, upstream: list[str], **overrides: Any) -> dict[str, Any]:
        reads = " JOIN ".join(
            f"features.{u} AS t{i}" + (" USING (symbol, date)" if i else "")
            for i, u in enumerate(upstream)
        )
        return base_definition(
            feature_name=name,
            feature_type="derived",
            sources=[],
            upstream_features=upstream,
            transformation={
                "transformation_type": "sql",
                "code": f"SELECT symbol, date, 1.0 AS {name} FROM {reads}",
            },
            **overrides,
        )

    return [
        base_definition(version="1.1.0"),
        derived("daily_return", ["close_price"]),
        derived("rsi_14d", ["close_price"]),
        derived("momentum_signal", ["daily_return", "rsi_14d"]),
        derived("old_signal", ["close_price"], status="deprecated"),
        derived("draft_feature", ["close_price"], status="draft"),
    ]


def usage_graph(payloads: list[dict[str, Any]] | None = None):
    from featurestore_dagster.definitions.graph import FeatureGraph
    from featurestore_dagster.definitions.models import FeatureDefinition

    definitions = [FeatureDefinition.model_validate(p) for p in payloads or usage_payloads()]
    return FeatureGraph.from_definitions(definitions, check_python=False)


def seed_usage_registry(engine, versions: dict[str, list[str]] | None = None) -> None:
    """Create the tables and register ``versions`` (rows written directly)."""
    from sqlalchemy import insert
    from sqlmodel import SQLModel

    from featurestore_dagster.registry.models import FeatureRecord, FeatureVersionRecord, utcnow

    SQLModel.metadata.create_all(engine)
    now = utcnow()
    versions = USAGE_VERSIONS if versions is None else versions
    with engine.begin() as conn:
        conn.execute(
            insert(FeatureRecord.__table__),
            [
                {
                    "feature_name": name,
                    "status": "active",
                    "current_version": items[-1],
                    "feature_type": "derived",
                    "usage_count": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for name, items in versions.items()
            ],
        )
        conn.execute(
            insert(FeatureVersionRecord.__table__),
            [
                {
                    "feature_name": name,
                    "version": version,
                    "major": int(version.split(".")[0]),
                    "minor": int(version.split(".")[1]),
                    "patch": int(version.split(".")[2]),
                    "change_category": "initial" if index == 0 else "data",
                    "snapshot": {"feature_name": name, "version": version},
                    "data_fingerprint": f"d{index}",
                    "metadata_fingerprint": f"m{index}",
                    "created_at": now,
                }
                for name, items in versions.items()
                for index, version in enumerate(items)
            ],
        )


def usage_host(graph, engine):
    """The smallest host of the ``UsageAPI`` mixin: a graph and a registry engine."""
    from types import SimpleNamespace

    from featurestore_dagster.usage.api import UsageAPI

    class UsageHost(UsageAPI):
        def __init__(self):
            self.graph = graph
            self.registry = SimpleNamespace(engine=engine)

    return UsageHost()


def sqlite_usage_engine(path: Path):
    from sqlmodel import create_engine

    from featurestore_dagster.registry.usage import enable_sqlite_concurrency

    engine = create_engine(f"sqlite:///{path}")
    enable_sqlite_concurrency(engine)
    return engine


@contextlib.contextmanager
def temporary_postgres_database(prefix: str):
    """Create a uniquely named PostgreSQL database, yield its URL, drop it afterwards.

    Skips the test when PostgreSQL does not answer, unless ``CI`` is set (then it fails).
    """
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin_url = make_url(os.environ.get("FEATURESTORE_TEST_POSTGRES_URL", POSTGRES_URL))
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        message = f"PostgreSQL at {admin_url.render_as_string(hide_password=True)}: {error.orig}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        from featurestore_dagster.registry import dispose_engines

        dispose_engines()  # FeatureStore's shared engines may hold connections to it
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_database_url():
    """A PostgreSQL database of its own for the requesting test module (usage tests)."""
    with temporary_postgres_database("fs_test") as url:
        yield url


# --- registry on SQLite and PostgreSQL (issue 3) ---------------------------------------------


@pytest.fixture(scope="session")
def registry_postgres_url():
    """One PostgreSQL database per test session (so per pytest-xdist worker)."""
    with temporary_postgres_database("fs_registry") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request, tmp_path):
    """A fresh, empty registry URL: a SQLite file under ``tmp_path``, or the session's
    PostgreSQL database whose tables are dropped after each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url = request.getfixturevalue("registry_postgres_url")
    yield url
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    from featurestore_dagster.registry import dispose_engines

    dispose_engines()
    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
