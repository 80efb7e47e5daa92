"""gc end to end through the real API and CLI, on SQLite and PostgreSQL catalogs: a training
set's manifest keeps its snapshot (it still rebuilds byte for byte) while an unreferenced older
snapshot of the same major is expired."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from featurestore_dagster.errors import LakeError
from featurestore_dagster.store import FeatureStore
from tests.storage.test_lake import cli, seed
from tests.storage.test_snapshots import built  # noqa: F401 - the fixture


def parquet_bytes(training_set) -> bytes:
    sink = io.BytesIO()
    pq.write_table(training_set.to_arrow(), sink)
    return sink.getvalue()


def publish(env, rows) -> int:
    seed(env, rows=rows)
    result = cli(env, "materialize", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]["snapshot_id"]


def test_gc_keeps_what_a_manifest_references_and_expires_the_rest(built):  # noqa: F811
    env, first, second = built
    spine = pd.DataFrame(
        {
            "symbol": ["AAA", "BBB", "AAA"],
            "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)],
            "label": [1.0, 0.0, 1.0],
        }
    )
    store = FeatureStore()
    trained = store.get_training_set(
        spine,
        ["close_price"],
        timestamp_column="date",
        model="alpha_ranker",
        model_version="1.0.0",
        environment="dev",
    )
    (pinned,) = trained.manifest["features"]
    assert pinned["snapshot_id"] == second and pinned["version"] == "2.0.0"
    original = parquet_bytes(trained)

    third = publish(env, ((1, 30.0), (2, 31.0), (3, 32.0)))  # newer 2.0.0 data
    fourth = publish(env, ((1, 40.0), (2, 41.0), (3, 42.0)))  # newer still: the live table
    assert first < second < third < fourth

    result = cli(env, "gc", "--older-than", "0d", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    kept = {int(k): why for k, why in report["kept"].items()}
    assert third in report["expired"]
    assert "training set" in kept[second]
    assert "major 1" in kept[first] and "major 2" in kept[fourth]
    listed = cli(env, "sql", "SELECT snapshot_id FROM featurestore.snapshots()", "--json")
    retained = {row["snapshot_id"] for row in json.loads(listed.stdout)}
    assert third not in retained and {first, second, fourth} <= retained

    store = FeatureStore()
    again = store.get_training_set(spine, manifest=trained.training_set_id)
    assert parquet_bytes(again) == original
    with pytest.raises(LakeError, match="not retained"):
        store.read_feature("close_price", snapshot=third)
    assert store.read_feature("close_price")["close_price"].max() == 420
