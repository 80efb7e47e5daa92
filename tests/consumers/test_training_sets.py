"""Training sets through ``FeatureStore`` on a real lake and registry: values, versions,
manifests that rebuild byte for byte, the leakage guard, usage, and bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from featurestore_dagster.errors import (
    LookaheadError,
    TrainingSetError,
    UnknownFeatureError,
    UsageError,
    VersionError,
)
from featurestore_dagster.registry.models import TrainingSetRecord, UsageRecord
from featurestore_dagster.registry.training_sets import protected_snapshot_ids
from tests.conftest import open_test_lake
from tests.consumers.conftest import FEATURES, spine_frame

# close_price of the spine rows (version 1.0.0 = close, 1.1.0 = close * 10); None = no value.
CLOSE_V1 = [104.0, 202.0, 204.0, None, None, None, 129.0, 319.0, 104.0]
# rate (ttl 10d in its definition): values on days 0, 7, 14, 21, 28.
RATE = [4.0, 4.0, 4.0, 4.0, 4.07, None, None, 4.14, 4.0]


def _bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _counts(store) -> tuple[int, int]:
    with store.registry.engine.connect() as conn:
        sets = conn.execute(select(func.count()).select_from(TrainingSetRecord)).scalar()
        usage = conn.execute(select(func.count()).select_from(UsageRecord)).scalar()
    return sets, usage


def test_point_in_time_values_and_spine_kept(published):
    spine = spine_frame()
    first = published.first.to_pandas()
    pd.testing.assert_frame_equal(first[spine.columns.tolist()], spine)  # spine unchanged
    assert first["close_price"].tolist()[:3] == CLOSE_V1[:3]
    assert [None if pd.isna(v) else v for v in first["close_price"]] == CLOSE_V1
    assert [None if pd.isna(v) else round(v, 6) for v in first["rate"]] == RATE

    latest = published.store().get_training_set(spine, FEATURES, timestamp_column="date")
    assert [None if pd.isna(v) else v for v in latest.to_pandas()["close_price"]] == [
        None if v is None else v * 10 for v in CLOSE_V1
    ]


def test_every_spine_kind_gives_the_same_table(published):
    store = published.store()
    spine = spine_frame()
    expected = store.get_training_set(spine, FEATURES, timestamp_column="date").to_arrow()
    arrow = pa.Table.from_pandas(spine, preserve_index=False)
    conn = open_test_lake(published.env)
    try:
        conn.register("given", arrow)
        conn.execute("CREATE OR REPLACE TABLE raw.labels AS SELECT * FROM given")
    finally:
        conn.close()
    for given in (
        arrow,
        pl.from_pandas(spine),
        "raw.labels",
        "SELECT * FROM raw.labels",
    ):
        table = store.get_training_set(given, FEATURES, timestamp_column="date").to_arrow()
        assert table.select(["close_price", "rate"]).equals(
            expected.select(["close_price", "rate"])
        )
    polars = store.get_training_set(pl.from_pandas(spine), FEATURES).to_polars()
    assert polars.columns == ["symbol", "date", "label", "close_price", "rate"]


def test_versions_pinned_and_two_versions_side_by_side(published):
    store = published.store()
    ts = store.get_training_set(
        spine_frame(), ["close_price@1.0.0", "close_price", "rate"], timestamp_column="date"
    )
    frame = ts.to_pandas()
    assert "close_price__v1_0_0" in frame and "close_price__v1_1_0" in frame
    assert [None if pd.isna(v) else v for v in frame["close_price__v1_0_0"]] == CLOSE_V1
    ten = [None if pd.isna(v) else v for v in frame["close_price__v1_1_0"]]
    assert ten == [None if v is None else v * 10 for v in CLOSE_V1]
    versions = {f["request"]: f["version"] for f in ts.manifest["features"]}
    assert versions == {"close_price@1.0.0": "1.0.0", "close_price": "1.1.0", "rate": "1.0.0"}
    major = store.get_training_set(spine_frame(), ["close_price@1"], timestamp_column="date")
    assert major.manifest["features"][0]["version"] == "1.1.0"
    for feature in ts.manifest["features"]:
        assert feature["snapshot_id"] is not None and feature["data_fingerprint"]
    with pytest.raises(TrainingSetError, match="close_price, close_price@1 all resolve to"):
        store.get_training_set(spine_frame(), ["close_price", "close_price@1"])


def test_manifest_rebuilds_byte_for_byte_after_a_new_version(published):
    store = published.store()
    first = published.first
    manifest = first.manifest
    assert manifest["spine"]["row_count"] == 9
    assert {f["version"] for f in manifest["features"]} == {"1.0.0"}
    assert [f["ttl"] for f in manifest["features"]] == [None, "10d"]
    assert store.get_training_set_manifest(first.training_set_id) == manifest
    # Version 1.1.0 was published since; the manifest still reads what 1.0.0 was.
    again = store.get_training_set(spine_frame(), manifest=manifest)
    assert _bytes(again.to_arrow()) == _bytes(published.first_table)
    by_id = store.get_training_set(spine_frame(), manifest=first.training_set_id)
    assert _bytes(by_id.to_arrow()) == _bytes(published.first_table)
    assert again.manifest == manifest
    # Retention keeps what the manifest pins.
    assert {f["snapshot_id"] for f in manifest["features"]} <= protected_snapshot_ids(
        store.registry.engine
    )
    other = spine_frame().iloc[:-1]
    with pytest.raises(TrainingSetError, match="8 rows but training set"):
        store.get_training_set(other, manifest=manifest)
    changed = spine_frame()
    changed.loc[0, "label"] = 9.0
    with pytest.raises(TrainingSetError, match="content differs"):
        store.get_training_set(changed, manifest=manifest)


def test_leakage_guard(published):
    store = published.store()
    before = _counts(store)
    with pytest.raises(LookaheadError, match="next_close.*LEAD"):
        store.get_training_set(
            spine_frame(), ["close_price", "next_close"], timestamp_column="date"
        )
    assert _counts(store) == before
    ts = store.get_training_set(
        spine_frame(), ["next_close"], timestamp_column="date", allow_lookahead=True
    )
    assert ts.manifest["allow_lookahead"] is True and ts.manifest["features"][0]["lookahead"]


@pytest.mark.parametrize(
    "spine,features,kwargs,error,match",
    [
        (None, ["nope"], {}, UnknownFeatureError, "unknown feature 'nope'"),
        (None, ["close_price@3.0.0"], {}, VersionError, "no registered version 3.0.0"),
        (None, ["close_price@7"], {}, VersionError, "no registered version in major 7"),
        (None, ["close_price", "close_price"], {}, TrainingSetError, "more than once"),
        (None, [], {}, TrainingSetError, "no features"),
        ("no_key", ["close_price"], {}, TrainingSetError, "missing key column.*'symbol'"),
        ("text_time", ["close_price"], {}, TrainingSetError, "not a date or timestamp"),
        ("empty", ["close_price"], {}, TrainingSetError, "empty"),
        (None, ["close_price"], {"ttl": "soon"}, TrainingSetError, "not a duration"),
        (None, ["close_price"], {"label_column": "symbol"}, TrainingSetError, "not a number"),
        (None, ["rate"], {"ttl": {"close_price": "1d"}}, TrainingSetError, "not requested"),
        (
            None,
            ["close_price"],
            {"model": "m", "model_version": "1"},
            UsageError,
            "together",
        ),
        (
            None,
            ["close_price"],
            {"model": "m", "model_version": "1", "environment": "moon"},
            UsageError,
            "unknown environment",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_recorded(
    published, spine, features, kwargs, error, match
):
    store = published.store()
    frame = spine_frame()
    if spine == "no_key":
        frame = frame.rename(columns={"symbol": "ticker"})
    elif spine == "text_time":
        frame["date"] = frame["date"].astype(str)
    elif spine == "empty":
        frame = frame.iloc[:0]
    before = _counts(store)
    with pytest.raises(error, match=match):
        store.get_training_set(frame, features, timestamp_column="date", **kwargs)
    assert _counts(store) == before


def test_usage_closes_the_loop(published):
    store = published.store()
    spine = spine_frame()
    ts = store.get_training_set(
        spine,
        ["close_price", "rate"],
        timestamp_column="date",
        model="alpha_ranker",
        model_version="2.4.0",
        environment="production",
        label_column="label",
    )
    frame = ts.to_pandas()
    history = {
        u.feature_name: u
        for name in ("close_price", "rate")
        for u in store.get_feature_usage_history(name, limit=5)
        if u.execution_id == ts.training_set_id
    }
    assert set(history) == {"close_price", "rate"}
    assert history["close_price"].feature_version == "1.1.0"
    for name in ("close_price", "rate"):
        both = frame[["label", name]].dropna()
        expected = float(np.corrcoef(both["label"], both[name].astype(float))[0, 1])
        assert math.isclose(history[name].correlation_with_target, expected, abs_tol=1e-9)
        assert math.isclose(ts.manifest["correlations"][name], expected, abs_tol=1e-9)
    count = store.get_feature("close_price").usage_count
    updated = store.record_model_usage(
        used_by_model="alpha_ranker",
        model_version="2.4.0",
        environment="production",
        features={"close_price": 0.7, "rate": 0.3},
        training_set_id=ts.training_set_id,
    )
    assert {u.feature_name: u.feature_importance for u in updated} == {
        "close_price": 0.7,
        "rate": 0.3,
    }
    assert all(u.execution_id == ts.training_set_id for u in updated)
    assert store.get_feature("close_price").usage_count == count  # the same records, not new
    with pytest.raises(UsageError, match="has no feature"):
        store.record_model_usage(
            used_by_model="alpha_ranker",
            model_version="2.4.0",
            environment="production",
            features={"next_close": 0.1},
            training_set_id=ts.training_set_id,
        )
    # A training set built without a model gets its records when the model reports.
    plain = store.get_training_set(spine, ["rate"], timestamp_column="date")
    written = store.record_model_usage(
        used_by_model="later_model",
        model_version="1.0.0",
        environment="dev",
        features={"rate": 1.0},
        training_set_id=plain.training_set_id,
    )
    assert [(u.feature_name, u.feature_version, u.execution_id) for u in written] == [
        ("rate", "1.0.0", plain.training_set_id)
    ]
