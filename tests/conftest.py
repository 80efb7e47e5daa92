"""Shared fixtures. Keep additive: each module's own fixtures live in its test file."""

from __future__ import annotations

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
        "FEATURESTORE_DUCKDB_PATH": str(tmp_path / "features.duckdb"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        # Empty: no bootstrap hook (the repo's pyproject names the example's data generator).
        "FEATURESTORE_BOOTSTRAP": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
