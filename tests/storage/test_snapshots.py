"""Snapshots at work, on SQLite and PostgreSQL catalogs: reads by version and snapshot, show,
data rollback, gc retention, doctor, and featurestore sql."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from featurestore_dagster.errors import LakeError
from featurestore_dagster.registry.models import TrainingSetRecord
from featurestore_dagster.store import FeatureStore
from tests.conftest import DefinitionsFolder, base_definition
from tests.storage.test_lake import cli, seed


@pytest.fixture
def built(lake_env, tmp_path):
    """close_price built at 1.0.0 (closes 10..12), then 2.0.0 (integer type, close * 10)."""
    folder = DefinitionsFolder(tmp_path)
    folder.write(base_definition())
    seed(lake_env)
    assert cli(lake_env, "apply", "--allow-breaking").exit_code == 0, "apply"
    first = _json(cli(lake_env, "materialize", "--json"))[0]
    folder.write(
        base_definition(
            version="2.0.0",
            data_type="integer",
            changelog="integer cents",
            transformation={
                "code": "SELECT symbol, date, CAST(close * 10 AS BIGINT) AS close_price"
                " FROM raw.prices"
            },
        )
    )
    assert cli(lake_env, "apply", "--allow-breaking").exit_code == 0, "apply"
    second = _json(cli(lake_env, "materialize", "--json"))[0]
    return lake_env, first["snapshot_id"], second["snapshot_id"]


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_read_feature_live_by_version_by_major_and_by_snapshot(built):
    _, first, second = built
    store = FeatureStore()
    assert store.read_feature("close_price")["close_price"].max() == 120
    assert store.read_feature("close_price", version="1.0.0")["close_price"].max() == 12.0
    assert store.read_feature("close_price", version="1")["close_price"].max() == 12.0
    assert store.read_feature("close_price", version="2").shape == (6, 3)
    table = store.read_feature("close_price", snapshot=first, output="arrow")
    assert table.num_rows == 6 and table.column("close_price").to_pylist()[0] in (10.0, 11.0, 12.0)
    assert store.read_feature("close_price", output="polars").height == 6
    assert store.feature_snapshot("close_price") == second
    assert store.feature_snapshot("close_price", "1.0.0") == first
    with pytest.raises(LakeError, match="no retained publish of major version 3"):
        store.read_feature("close_price", version="3")
    with pytest.raises(LakeError, match="not retained at lake snapshot 99999"):
        store.read_feature("close_price", snapshot=99999)
    with store.connect() as conn:
        assert conn.sql("SELECT count(*) FROM _latest.close_price").fetchone() == (2,)


def test_show_prints_the_snapshot_of_each_publish(built):
    env, first, second = built
    shown = json.loads(cli(env, "show", "close_price", "--json").stdout)
    assert [m["snapshot_id"] for m in shown["materializations"]] == [second, first]
    human = cli(env, "show", "close_price")
    assert "snapshot" in human.stdout and str(second) in human.stdout


def test_rollback_restores_the_data_from_its_snapshot(built):
    env, first, _ = built
    result = cli(env, "rollback", "close_price", "--to", "1.0.0", "--allow-breaking", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["restored"] and data["from_snapshot"] == first and data["rows"] == 6
    store = FeatureStore()
    assert store.read_feature("close_price")["close_price"].max() == 12.0
    assert store.read_feature("close_price", snapshot=first).equals(
        store.read_feature("close_price")
    )
    runs = json.loads(cli(env, "show", "close_price", "--json").stdout)["materializations"]
    assert runs[0]["status"] == "restored" and runs[0]["snapshot_id"] == data["snapshot_id"]
    assert runs[0]["version"] == json.loads(result.stdout)["version"]


def test_gc_keeps_latest_publish_of_each_major_and_training_set_snapshots(built):
    env, first, second = built
    seed(env, rows=((1, 30.0),))
    third = json.loads(cli(env, "materialize", "--json").stdout)[0]["snapshot_id"]
    # A training set references the 2.0.0 publish that a newer 2.x publish superseded.
    engine = create_engine(env["FEATURESTORE_REGISTRY_URL"])
    with engine.begin() as conn:
        manifest = {"features": [{"name": "close_price", "snapshot_id": second}]}
        conn.execute(
            TrainingSetRecord.__table__.insert().values(
                id="ts-1",
                created_at=datetime.now(UTC),
                spine_row_count=1,
                spine_hash="0" * 64,
                snapshot_ids=[second],
                manifest=manifest,
            )
        )
    engine.dispose()
    dry = json.loads(cli(env, "gc", "--older-than", "0m", "--dry-run", "--json").stdout)
    kept = {int(k) for k in dry["kept"]}
    assert {first, second, third} <= kept
    result = cli(env, "gc", "--older-than", "0m", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expired"] == dry["expired"] and dry["expired"]
    store = FeatureStore()
    assert store.read_feature("close_price", version="1")["close_price"].max() == 12.0
    assert store.read_feature("close_price", snapshot=second)["close_price"].max() == 120
    expired = dry["expired"][0]
    with pytest.raises(LakeError, match="not retained"):
        store.read_feature("close_price", snapshot=expired)
    assert cli(env, "gc", "--older-than", "soon").exit_code == 2


def test_rollback_without_a_retained_snapshot_says_a_rebuild_is_needed(built, tmp_path):
    env, first, _ = built
    # The 1.x publish is gone: expire it by hand, as if it predated retention.
    store = FeatureStore()
    with store.connect(read_only=False) as conn:
        conn.execute(f"CALL ducklake_expire_snapshots('featurestore', versions => [{first}])")
    result = cli(env, "rollback", "close_price", "--to", "1.0.0", "--allow-breaking")
    assert result.exit_code == 0, result.output
    assert "a rebuild is needed" in result.stderr
    assert store.read_feature("close_price")["close_price"].max() == 120  # untouched


def test_doctor_writes_records_the_registry_lost(built):
    env, first, second = built
    engine = create_engine(env["FEATURESTORE_REGISTRY_URL"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM materializations"))
    engine.dispose()
    result = cli(env, "doctor", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["reconciled"]
    assert sorted(r["snapshot_id"] for r in rows) == [first, second]
    assert {r["version"] for r in rows} == {"1.0.0", "2.0.0"}
    assert "agree" in cli(env, "doctor").stdout
    runs = json.loads(cli(env, "show", "close_price", "--json").stdout)["materializations"]
    assert [r["snapshot_id"] for r in runs] == [second, first]


def test_sql_command_prints_table_json_and_csv(built):
    env, _, _ = built
    query = "SELECT symbol, max(close_price) AS top FROM features.close_price GROUP BY 1 ORDER BY 1"
    as_json = cli(env, "sql", query, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {"symbol": "AAA", "top": 120},
        {"symbol": "BBB", "top": 120},
    ]
    assert cli(env, "sql", query, "--csv").stdout.splitlines() == [
        "symbol,top",
        "AAA,120",
        "BBB,120",
    ]
    assert "AAA" in cli(env, "sql", query).stdout
    bad = cli(env, "sql", "SELECT nope FROM features.close_price")
    assert bad.exit_code == 2 and "query failed" in bad.stderr
    refused = cli(env, "sql", "DROP TABLE features.close_price")
    assert refused.exit_code == 2
    assert json.loads(
        cli(env, "sql", "SELECT count(*) AS n FROM features.close_price", "--json").stdout
    ) == [{"n": 6}]
