"""The bundled example's model asset in its code location, with the real CLIs.

A copy of the example (its definitions, 12 symbols of generated data) is registered and built
with ``featurestore``; ``dagster asset list`` shows ``alpha_model`` below its four features,
and ``dagster asset materialize`` runs it in a real instance: the training set's manifest is
stored and names the run, and the usage records (with the fitted importances) carry its id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from featurestore_dagster.store import FeatureStore
from featurestore_example.models import FEATURES, MODEL

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULE = "featurestore_example.definitions"


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "feature_definitions", root / "feature_definitions")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURESTORE_", "DAGSTER"))}
    env["FEATURESTORE_BOOTSTRAP"] = "featurestore_example.data:ensure_raw_data"
    env["FEATURESTORE_EXAMPLE_SYMBOLS"] = "12"
    env["DAGSTER_HOME"] = str(root / "dagster_home")
    (root / "dagster_home").mkdir()
    run("featurestore", "apply", cwd=root, env=env)
    built = run("featurestore", "materialize", "--json", cwd=root, env=env)
    return root, env, built


def test_materialize_builds_features_only(example):
    _root, _env, built = example
    names = {b["feature_name"] for b in json.loads(built.stdout)}
    assert MODEL not in names and set(FEATURES) <= names


def test_the_model_sits_below_its_features_and_records_its_run(example):
    root, env, _built = example
    listed = run(
        "dagster", "asset", "list", "-m", MODULE, "--select", f"+{MODEL}", cwd=root, env=env
    )
    assert set(listed.stdout.split()) == {MODEL, *(f"features/{n}" for n in FEATURES)}

    run("dagster", "asset", "materialize", "-m", MODULE, "--select", MODEL, cwd=root, env=env)

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey(MODEL))
        assert event is not None
        run_id = event.run_id
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        metadata = event.asset_materialization.metadata
    finally:
        instance.dispose()
    training_set_id = metadata["training_set_id"].value
    importances = metadata["importances"].value
    assert set(importances) == set(FEATURES)
    assert sum(importances.values()) == pytest.approx(1.0, abs=1e-5)
    assert metadata["dagster/row_count"].value > 100

    store = FeatureStore(
        definitions_path=root / "feature_definitions",
        registry_url=f"sqlite:///{root / '.featurestore/registry.db'}",
        lake_catalog=f"sqlite:{root / '.featurestore/lake.sqlite'}",
        lake_data=root / ".featurestore/lake",
    )
    manifest = store.get_training_set_manifest(training_set_id)
    assert manifest["execution_id"] == run_id and manifest["model"] == MODEL
    assert [f["request"] for f in manifest["features"]] == FEATURES
    for name in FEATURES:
        (usage,) = store.get_feature_usage_history(name)
        assert (usage.used_by_model, usage.execution_id) == (MODEL, run_id)
        assert usage.feature_importance == pytest.approx(importances[name])
        assert usage.correlation_with_target == pytest.approx(manifest["correlations"][name])
