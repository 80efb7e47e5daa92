"""The registry on SQLite and PostgreSQL: registration, immutability, concurrency, history."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import event, insert
from sqlalchemy.exc import IntegrityError

from featurestore_dagster.errors import FeatureStoreError, RegistryError
from featurestore_dagster.registry import Registration, Registry
from featurestore_dagster.registry.models import FeatureVersionRecord, UsageRecord, utcnow
from tests.conftest import DefinitionsFolder, base_definition


def registration(name="close_price", version="1.0.0", expected=None, data="d1", **extra):
    snapshot = base_definition(feature_name=name, version=version)
    snapshot["transformation"]["code"] = snapshot["transformation"]["code"].replace(
        "close_price", name
    )
    return Registration(
        feature_name=name,
        version=version,
        change_category="initial" if expected is None else "data",
        snapshot=snapshot,
        data_fingerprint=data,
        metadata_fingerprint="m1",
        changelog=f"{name} {version}",
        created_by="tester",
        expected_version=expected,
        **extra,
    )


def test_register_and_read_back(registry_url):
    registry = Registry(registry_url)
    written = registry.register([registration(), registration("volume")], created_by="tester")
    assert sorted(v.feature_name for v in written) == ["close_price", "volume"]
    registry.register([registration(version="1.1.0", expected="1.0.0", data="d2")])
    registry.register([registration(version="1.10.0", expected="1.1.0", data="d3")])

    state = registry.registered_state()
    assert state["close_price"].current_version == "1.10.0"
    assert state["close_price"].data_fingerprint == "d3"
    assert state["close_price"].snapshot["version"] == "1.10.0"

    versions = registry.versions("close_price")
    assert [v.version for v in versions] == ["1.10.0", "1.1.0", "1.0.0"]  # semver, not text
    first = versions[-1]
    assert (first.change_category, first.created_by, first.changelog) == (
        "initial",
        "tester",
        "close_price 1.0.0",
    )
    assert first.created_at.tzinfo is not None and not first.is_rolled_back

    rows = registry.feature_rows(["close_price"])
    assert rows["close_price"]["status"] == "active"
    assert rows["close_price"]["usage_count"] == 0
    events = registry.events("close_price")
    assert [e["event"] for e in events] == ["registered"] * 3


def test_the_same_registration_twice_is_registered_once(registry_url):
    registry = Registry(registry_url)
    assert len(registry.register([registration()])) == 1
    assert registry.register([registration()]) == []
    assert len(registry.versions("close_price")) == 1


def test_a_conflicting_registration_writes_nothing(registry_url):
    registry = Registry(registry_url)
    registry.register([registration()])
    batch = [registration("volume"), registration(data="other")]
    with pytest.raises(RegistryError, match="close_price.*1.0.0.*different definition"):
        registry.register(batch)
    assert "volume" not in registry.registered_state()  # all or nothing
    assert len(registry.versions("close_price")) == 1


def test_a_stale_plan_is_a_conflict(registry_url):
    registry = Registry(registry_url)
    registry.register([registration()])
    registry.register([registration(version="1.1.0", expected="1.0.0", data="d2")])
    with pytest.raises(RegistryError, match="another writer registered version 1.1.0"):
        registry.register([registration(version="1.2.0", expected="1.0.0", data="d3")])


def test_the_database_refuses_duplicate_versions(registry_url):
    registry = Registry(registry_url)
    registry.register([registration()])
    row = {
        "feature_name": "close_price",
        "version": "1.0.0",
        "major": 1,
        "minor": 0,
        "patch": 0,
        "change_category": "data",
        "snapshot": {},
        "data_fingerprint": "x",
        "metadata_fingerprint": "y",
        "created_at": utcnow(),
    }
    with pytest.raises(IntegrityError):
        with registry.engine.begin() as conn:
            conn.execute(insert(FeatureVersionRecord.__table__), [row])


def test_a_version_row_without_its_feature_state_is_reported(registry_url):
    """The unique constraint fires inside the transaction; the retry names the conflict."""
    registry = Registry(registry_url)
    registry.register([registration()])
    with registry.engine.begin() as conn:
        conn.execute(
            insert(FeatureVersionRecord.__table__),
            [
                {
                    "feature_name": "close_price",
                    "version": "1.1.0",
                    "major": 1,
                    "minor": 1,
                    "patch": 0,
                    "change_category": "data",
                    "snapshot": {},
                    "data_fingerprint": "someone-else",
                    "metadata_fingerprint": "m",
                    "created_at": utcnow(),
                }
            ],
        )
    with pytest.raises(RegistryError, match="1.1.0 is already registered"):
        registry.register([registration(version="1.1.0", expected="1.0.0", data="d2")])
    assert registry.registered_state()["close_price"].current_version == "1.0.0"


def test_bulk_registration_is_batched(registry_url):
    registry = Registry(registry_url)
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(registry.engine, "before_cursor_execute", count)
    try:
        registry.register([registration(f"feature_{i:03d}") for i in range(300)])
    finally:
        event.remove(registry.engine, "before_cursor_execute", count)
    assert len(registry.registered_state()) == 300
    # lock/select + features + versions + events (+ BEGIN): not one statement per feature
    assert len(statements) < 15, statements


def test_rollback_marks_and_removed_features(registry_url):
    registry = Registry(registry_url)
    registry.register([registration(), registration("volume")])
    registry.register([registration(version="1.1.0", expected="1.0.0", data="d2")])
    registry.register(
        [
            registration(
                version="1.2.0",
                expected="1.1.0",
                data="d1",
                restored_from="1.0.0",
                rolls_back=["1.1.0"],
                event="rolled_back",
            )
        ],
        removed=["volume"],
    )
    versions = {v.version: v for v in registry.versions("close_price")}
    assert versions["1.1.0"].is_rolled_back and versions["1.1.0"].rolled_back_at is not None
    assert not versions["1.0.0"].is_rolled_back
    assert versions["1.2.0"].restored_from == "1.0.0"
    rows = registry.feature_rows()
    assert rows["volume"]["status"] == "archived" and rows["volume"]["archived_at"] is not None
    assert [e["event"] for e in registry.events("volume")][0] == "removed"


def test_code_versions_are_the_earliest_with_the_same_data(registry_url):
    registry = Registry(registry_url)
    registry.register([registration(data="A")])
    registry.register([registration(version="1.0.1", expected="1.0.0", data="A")])
    registry.register([registration(version="1.1.0", expected="1.0.1", data="B")])
    registry.register([registration(version="1.2.0", expected="1.1.0", data="A")])
    assert registry.code_versions({"close_price": "A"}) == {"close_price": "1.0.0"}
    assert registry.code_versions({"close_price": "B"}) == {"close_price": "1.1.0"}
    assert registry.code_versions({"close_price": "C"}) == {}


def test_materializations_round_trip(registry_url):
    registry = Registry(registry_url)
    registry.record_materializations(
        [
            {
                "feature_name": "close_price",
                "version": "1.0.0",
                "code_version": "1.0.0",
                "data_fingerprint": "d1",
                "run_id": f"run-{i}",
                "status": "published",
                "rows": 10 * i,
                "min_value": 0.5,
                "max_value": 9.5,
                "mean_value": 3.0,
                "null_fraction": 0.0,
                "checks": [{"name": "schema", "passed": True, "blocking": True}],
                "duration_ms": 12.5,
                "created_at": utcnow() + timedelta(seconds=i),
            }
            for i in range(3)
        ]
    )
    runs = registry.materializations("close_price", limit=2)
    assert [r.run_id for r in runs] == ["run-2", "run-1"]
    assert runs[0].rows == 20 and runs[0].checks[0]["name"] == "schema"


def test_production_usage_within_the_window(registry_url):
    registry = Registry(registry_url)
    now = utcnow()
    rows = [
        ("close_price", "ranker", "production", now - timedelta(days=5)),
        ("close_price", "ranker", "production", now - timedelta(days=1)),
        ("close_price", "old_model", "production", now - timedelta(days=200)),
        ("close_price", "notebook", "dev", now),
        ("volume", "sizer", "production", now),
    ]
    with registry.engine.begin() as conn:
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "feature_name": f,
                    "feature_version": "1.0.0",
                    "used_by_model": m,
                    "model_version": "1",
                    "environment": env,
                    "usage_timestamp": ts,
                }
                for f, m, env, ts in rows
            ],
        )
    usage = registry.production_usage(["close_price"], window_days=90)
    assert [(u.used_by_model, u.feature_name) for u in usage] == [("ranker", "close_price")]
    assert usage[0].last_used_at > now - timedelta(days=2)
    assert len(registry.production_usage(["close_price"], window_days=365)) == 2


@pytest.mark.parametrize(
    "url,phrase",
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "cannot use the registry"),
        ("not a url", "is not a database URL"),
        ("nosuchdb://x/y", "cannot be used"),
    ],
)
def test_unusable_registry_urls(url, phrase):
    with pytest.raises(RegistryError, match=phrase) as caught:
        Registry(url)
    assert caught.value.exit_code == 2


# --- concurrent applies (separate processes) ----------------------------------------------


def _apply_worker(definitions, registry_url, lake_data, barrier, results):
    from featurestore_dagster.store import FeatureStore

    store = FeatureStore(
        definitions_path=definitions, registry_url=registry_url, lake_data=lake_data
    )
    store.plan()  # everything imported and planned before the race starts
    barrier.wait(timeout=60)
    try:
        results.put(("ok", [v.version for v in store.apply()]))
    except FeatureStoreError as error:
        results.put(("error", str(error)))


def _race(folders, registry_url, tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(folders)), context.Queue()
    processes = [
        context.Process(
            target=_apply_worker,
            args=(str(f), registry_url, str(tmp_path / f"lake{i}"), barrier, results),
        )
        for i, f in enumerate(folders)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return outcomes


def test_concurrent_applies_of_the_same_change_register_it_once(registry_url, tmp_path):
    folder = DefinitionsFolder(tmp_path / "project")
    folder.write(base_definition())
    outcomes = _race([folder.path, folder.path], registry_url, tmp_path)
    assert sorted(kind for kind, _ in outcomes) == ["ok", "ok"], outcomes
    assert sorted(len(versions) for _, versions in outcomes) == [0, 1]
    assert len(Registry(registry_url).versions("close_price")) == 1


def test_concurrent_conflicting_applies_give_one_row_and_one_error(registry_url, tmp_path):
    folders = []
    for i, description in enumerate(["first", "second"]):
        folder = DefinitionsFolder(tmp_path / f"project{i}")
        folder.write(base_definition(description=description))
        folders.append(folder.path)
    outcomes = _race(folders, registry_url, tmp_path)
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["error", "ok"], outcomes
    message = next(text for kind, text in outcomes if kind == "error")
    assert "close_price" in message and "1.0.0" in message
    assert len(Registry(registry_url).versions("close_price")) == 1
