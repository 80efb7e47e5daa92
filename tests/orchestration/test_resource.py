"""``FeatureStoreResource`` inside real Dagster runs: a model asset reads a training set, a
feature table and latest values through it, and every usage record it leaves (those of the
training set and the importances added after the fit) carries the run id.

The project is published once per module through the real CLI (registered 1.0.0, then 1.1.0
with close * 10), into a real SQLite-catalog lake and registry.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from featurestore_dagster import FeatureStoreResource, feature_asset_key
from featurestore_dagster.errors import UnknownFeatureError
from tests.consumers.conftest import Project, _env, load_raw, spine_frame


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("resource")
    env = _env(root, f"sqlite:{root / 'lake.sqlite'}")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.chdir(root)
        published = Project(root, env)
        load_raw(env)
        published.publish(1.0, "1.0.0")
        published.publish(10.0, "1.1.0")
        yield published


def run_model(asset: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [asset], resources={"feature_store": FeatureStoreResource()}, raise_on_error=False
    )
    assert result.success, [str(e) for e in result.all_events if e.is_failure]
    return result


def test_a_model_asset_trains_through_the_resource_and_points_at_its_run(project):
    seen: dict = {}

    @dg.asset(deps=[feature_asset_key("close_price"), feature_asset_key("rate")])
    def price_model(feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        ts = feature_store.get_training_set(
            spine_frame(),
            ["close_price", "rate"],
            timestamp_column="date",
            model="price_model",
            model_version="1.0.0",
            environment="staging",
            label_column="label",
        )
        data = ts.to_pandas().dropna()
        x = data[["close_price", "rate"]].to_numpy(dtype=float)
        coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], data["label"], rcond=None)
        importance = np.abs(coef[:2]) / np.abs(coef[:2]).sum()
        seen["importance"] = dict(zip(["close_price", "rate"], importance.tolist(), strict=True))
        seen["usage"] = feature_store.record_model_usage(
            used_by_model="price_model",
            model_version="1.0.0",
            environment="staging",
            features=seen["importance"],
            training_set_id=ts.training_set_id,
        )
        seen["training_set_id"] = ts.training_set_id
        seen["table"] = feature_store.read_feature("close_price", output="arrow")
        seen["first"] = feature_store.read_feature("close_price", version="1.0.0")
        seen["online"] = feature_store.get_online_features(
            [{"symbol": "AAA"}, {"symbol": "ZZZ"}], ["close_price"]
        ).to_pandas()
        return dg.MaterializeResult(metadata={"training_set_id": ts.training_set_id})

    store = project.store()
    before = store.get_feature("close_price").usage_count
    result = run_model(price_model)
    run_id = result.run_id

    # The manifest is stored and names the run; the training set's records carry the run id.
    manifest = store.get_training_set_manifest(seen["training_set_id"])
    assert manifest["execution_id"] == run_id
    assert {f["version"] for f in manifest["features"]} == {"1.1.0", "1.0.0"}
    assert [(u.feature_name, u.execution_id) for u in seen["usage"]] == [
        ("close_price", run_id),
        ("rate", run_id),
    ]
    for name in ("close_price", "rate"):
        (usage,) = [u for u in store.get_feature_usage_history(name) if u.execution_id == run_id]
        assert usage.used_by_model == "price_model"
        assert usage.feature_importance == pytest.approx(seen["importance"][name])
        assert usage.correlation_with_target == pytest.approx(manifest["correlations"][name])
    # The importances went to the training set's records: one use, not two.
    assert store.get_feature("close_price").usage_count == before + 1

    # Reads through the resource are the store's reads.
    assert seen["table"].equals(store.read_feature("close_price", output="arrow"))
    assert seen["first"]["close_price"].max() == 329.0  # version 1.0.0: close (CCC, day 29)
    online = seen["online"]
    assert online["close_price"].iloc[0] == 1290.0  # AAA's last close (day 29) * 10
    assert pd.isna(online["close_price"].iloc[1])  # an unknown symbol
    # The same run in the Dagster instance: the materialization carries the training set.
    (materialization,) = result.asset_materializations_for_node("price_model")
    assert materialization.metadata["training_set_id"].value == seen["training_set_id"]


def test_usage_recorded_after_a_plain_training_set_also_points_at_the_run(project):
    seen: dict = {}

    @dg.asset(deps=[feature_asset_key("rate")])
    def rate_model(feature_store: FeatureStoreResource) -> None:
        ts = feature_store.get_training_set(spine_frame(), ["rate"], timestamp_column="date")
        seen["manifest"] = ts.manifest
        seen["usage"] = feature_store.record_model_usage(
            used_by_model="rate_model",
            model_version="2.0.0",
            environment="dev",
            features={"rate": 1.0},
            training_set_id=ts.training_set_id,
        )
        # A manifest rebuild records nothing and keeps the stored manifest.
        again = feature_store.get_training_set(spine_frame(), manifest=ts.training_set_id)
        seen["again"] = again.manifest

    run_id = run_model(rate_model).run_id
    assert seen["manifest"]["execution_id"] == run_id
    assert seen["again"] == seen["manifest"]
    assert [(u.feature_name, u.feature_version, u.execution_id) for u in seen["usage"]] == [
        ("rate", "1.0.0", run_id)
    ]


def test_a_misspelled_feature_fails_the_run_with_its_name(project):
    @dg.asset
    def typo_model(feature_store: FeatureStoreResource) -> None:
        feature_store.read_feature("close_prise")

    result = dg.materialize(
        [typo_model], resources={"feature_store": FeatureStoreResource()}, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.cause
    assert error.cls_name == "UnknownFeatureError" and "close_prise" in error.message
    with pytest.raises(UnknownFeatureError):
        feature_asset_key("close_prise")
