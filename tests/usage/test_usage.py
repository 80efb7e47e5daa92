"""Usage recording, history and statistics on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel, create_engine

from featurestore_dagster.errors import RegistryError, UnknownFeatureError, UsageError
from featurestore_dagster.registry.models import FeatureRecord, UsageRecord
from featurestore_dagster.usage.api import (
    registry_usage_metadata,
    usage_metadata,
    usage_summary,
)
from featurestore_dagster.usage.models import FeatureUsage
from tests.conftest import (
    seed_usage_registry,
    sqlite_usage_engine,
    usage_graph,
    usage_host,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = sqlite_usage_engine(tmp_path / "registry.db")
    else:
        engine = create_engine(request.getfixturevalue("postgres_database_url"))
        SQLModel.metadata.drop_all(engine)
    seed_usage_registry(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine):
    return usage_host(usage_graph(), engine)


def usage_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def counters(engine) -> dict[str, tuple[int, datetime | None]]:
    from featurestore_dagster.registry.models import as_utc

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                FeatureRecord.feature_name, FeatureRecord.usage_count, FeatureRecord.last_used_at
            )
        )
        return {name: (count, as_utc(last)) for name, count, last in rows}


def run(store, **overrides):
    arguments = {
        "used_by_model": "alpha_ranker",
        "model_version": "2.3.0",
        "environment": "production",
        "features": {"close_price": 0.4, "daily_return": 0.2, "rsi_14d": 0.1},
        "correlations": {"close_price": 0.05, "rsi_14d": -0.3},
        "execution_id": "run-1",
        "execution_duration_ms": 1250.0,
        "usage_timestamp": T0,
    }
    arguments.update(overrides)
    return store.record_model_usage(**arguments)


# --- recording -----------------------------------------------------------------------------------


def test_record_feature_usage_defaults_to_current_version(store, engine):
    record = store.record_feature_usage(
        feature_name="close_price",
        used_by_model="alpha_ranker",
        model_version="2.3.0",
        environment="production",
        feature_importance=0.31,
        correlation_with_target=0.12,
    )
    assert isinstance(record, FeatureUsage)
    assert record.id is not None
    assert record.feature_version == "1.1.0"
    assert record.environment == "production"
    assert record.usage_timestamp.tzinfo is not None
    assert counters(engine)["close_price"] == (1, record.usage_timestamp)
    assert counters(engine)["rsi_14d"] == (0, None)


def test_record_feature_usage_with_an_older_registered_version(store):
    record = store.record_feature_usage(
        feature_name="close_price",
        used_by_model="m",
        model_version="1",
        environment="dev",
        feature_version="1.0.0",
    )
    assert record.feature_version == "1.0.0"
    assert record.feature_importance is None


def test_record_model_usage_writes_one_record_per_feature(store, engine):
    records = run(store)
    assert [r.feature_name for r in records] == ["close_price", "daily_return", "rsi_14d"]
    assert len({r.id for r in records}) == 3
    assert {r.usage_timestamp for r in records} == {T0}
    assert {r.execution_id for r in records} == {"run-1"}
    by_name = {r.feature_name: r for r in records}
    assert by_name["rsi_14d"].correlation_with_target == -0.3
    assert by_name["daily_return"].correlation_with_target is None
    assert by_name["close_price"].feature_importance == 0.4
    assert usage_rows(engine) == 3
    assert counters(engine)["daily_return"] == (1, T0)


def test_record_model_usage_per_feature_versions(store):
    records = run(
        store,
        features={"close_price": 0.4},
        correlations={},
        feature_versions={"close_price": "1.0.0"},
    )
    assert records[0].feature_version == "1.0.0"


def test_features_may_be_a_list_of_names(store):
    records = run(store, features=["close_price", "rsi_14d"], correlations={})
    assert [r.feature_importance for r in records] == [None, None]


def test_last_used_at_keeps_the_newest_time(store, engine):
    run(store, usage_timestamp=T0)
    run(store, usage_timestamp=T0 - timedelta(days=3))
    assert counters(engine)["close_price"] == (2, T0)
    run(store, usage_timestamp=T0 + timedelta(hours=1))
    assert counters(engine)["close_price"] == (3, T0 + timedelta(hours=1))


def test_naive_and_other_zone_timestamps_are_stored_as_utc(store):
    from zoneinfo import ZoneInfo

    local = datetime(2024, 3, 1, 13, 0, tzinfo=ZoneInfo("Europe/Paris"))
    records = run(store, features={"close_price": 0.1}, correlations={}, usage_timestamp=local)
    assert records[0].usage_timestamp == T0
    history = store.get_feature_usage_history("close_price")
    assert history[0].usage_timestamp == T0
    naive = run(
        store, features={"close_price": 0.1}, correlations={}, usage_timestamp=datetime(2024, 3, 2)
    )
    assert naive[0].usage_timestamp == datetime(2024, 3, 2, tzinfo=UTC)


def test_groups_are_one_transaction_and_each_refused_alone(store, engine):
    """A group commit: the good groups are written (with their ids, in order), each bad one
    gets its own error, whether found by checking (a NaN, an unknown name) or by the write
    (a version that is not registered)."""
    good = {"used_by_model": "g", "model_version": "1", "environment": "dev"}
    groups = [
        [{**good, "feature_name": "close_price"}],
        [{**good, "feature_name": "close_price", "feature_importance": math.nan}],
        [{**good, "features": {"rsi_14d": 1.0, "daily_return": 2.0}}],
        [{**good, "feature_name": "no_such_feature"}],
        [{**good, "feature_name": "rsi_14d", "feature_version": "9.9.9"}],
        [{**good, "feature_name": "daily_return"}],
    ]
    before = counters(engine)
    results = store.record_usage_groups(groups, return_records=True)
    assert [type(r).__name__ for r in results] == [
        "UsageBatchResult",
        "UsageError",
        "UsageBatchResult",
        "UnknownFeatureError",
        "UsageError",
        "UsageBatchResult",
    ]
    assert "9.9.9" in str(results[4]) and "feature_importance" in str(results[1])
    assert [r.features for r in results if not isinstance(r, Exception)] == [
        ["close_price"],
        ["daily_return", "rsi_14d"],
        ["daily_return"],
    ]
    ids = [u.id for r in results if not isinstance(r, Exception) for u in r.records]
    assert len(ids) == len(set(ids)) == 4
    assert usage_rows(engine) == 4
    after = counters(engine)
    added = {n: after[n][0] - before[n][0] for n in after if after[n][0] != before[n][0]}
    assert added == {"close_price": 1, "rsi_14d": 1, "daily_return": 2}


def test_batch_mixes_runs_and_single_records(store, engine):
    result = store.record_usage_batch(
        [
            {
                "used_by_model": "a",
                "model_version": "1",
                "environment": "dev",
                "features": {"close_price": 1.0, "rsi_14d": 2.0},
            },
            {
                "feature_name": "daily_return",
                "used_by_model": "b",
                "model_version": 7,
                "environment": "staging",
                "usage_timestamp": "2024-03-01T12:00:00Z",
            },
        ],
        return_records=True,
    )
    assert result.records_written == 3
    assert result.features == ["close_price", "daily_return", "rsi_14d"]
    assert result.records[2].model_version == "7"
    assert result.records[2].usage_timestamp == T0
    assert usage_rows(engine) == 3


# --- bad input: one clear error, nothing written ------------------------------------------------

BAD_RUNS = [
    ("unknown feature", {"features": {"close_pryce": 0.1}}, UnknownFeatureError, "close_price"),
    (
        "unknown version",
        {"features": {"close_price": 0.1}, "feature_versions": {"close_price": "9.0.0"}},
        UsageError,
        "no registered version 9.0.0",
    ),
    (
        "not a version",
        {"features": {"close_price": 0.1}, "feature_versions": {"close_price": "latest"}},
        UsageError,
        "not a semantic version",
    ),
    ("nan importance", {"features": {"close_price": math.nan}}, UsageError, "finite"),
    ("inf importance", {"features": {"close_price": math.inf}}, UsageError, "finite"),
    ("negative importance", {"features": {"close_price": -0.1}}, UsageError, ">= 0"),
    ("text importance", {"features": {"close_price": "high"}}, UsageError, "must be a number"),
    ("bool importance", {"features": {"close_price": True}}, UsageError, "must be a number"),
    (
        "nan correlation",
        {"features": {"close_price": 0.1}, "correlations": {"close_price": math.nan}},
        UsageError,
        "finite",
    ),
    (
        "-inf correlation",
        {"features": {"close_price": 0.1}, "correlations": {"close_price": -math.inf}},
        UsageError,
        "finite",
    ),
    (
        "correlation above 1",
        {"features": {"close_price": 0.1}, "correlations": {"close_price": 1.5}},
        UsageError,
        "within [-1, 1]",
    ),
    (
        "correlation below -1",
        {"features": {"close_price": 0.1}, "correlations": {"close_price": -1.01}},
        UsageError,
        "within [-1, 1]",
    ),
    ("unknown environment", {"environment": "prod"}, UsageError, "dev, staging, production"),
    ("empty model", {"used_by_model": ""}, UsageError, "used_by_model"),
    ("negative duration", {"execution_duration_ms": -5}, UsageError, "execution_duration_ms"),
    ("nan duration", {"execution_duration_ms": math.nan}, UsageError, "execution_duration_ms"),
    ("bad timestamp", {"usage_timestamp": "yesterday"}, UsageError, "ISO 8601"),
    ("no features", {"features": {}}, UsageError, "empty"),
    (
        "correlation for an unlisted feature",
        {"features": {"close_price": 0.1}, "correlations": {"rsi_14d": 0.2}},
        UsageError,
        "not in 'features'",
    ),
    (
        "not registered",
        {"features": {"close_price": 0.1, "draft_feature": 0.2}},
        UsageError,
        "featurestore apply",
    ),
    (
        "one unknown feature in a batch",
        {"features": {"close_price": 0.1, "daily_return": 0.2, "no_such_feature": 0.3}},
        UnknownFeatureError,
        "no_such_feature",
    ),
    (
        "one bad correlation in a batch",
        {
            "features": {"close_price": 0.1, "daily_return": 0.2, "rsi_14d": 0.3},
            "correlations": {"close_price": 0.5, "rsi_14d": 2.0},
        },
        UsageError,
        "rsi_14d",
    ),
]


@pytest.mark.parametrize(
    "overrides,error,message", [case[1:] for case in BAD_RUNS], ids=[c[0] for c in BAD_RUNS]
)
def test_bad_run_is_refused_and_nothing_is_written(store, engine, overrides, error, message):
    overrides = {"correlations": {}, **overrides}
    with pytest.raises(error) as raised:
        run(store, **overrides)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value) or "problems" in str(raised.value)
    assert usage_rows(engine) == 0
    assert {count for count, _ in counters(engine).values()} == {0}


def test_every_problem_of_a_batch_is_listed_together(store):
    with pytest.raises(UsageError) as raised:
        run(
            store,
            environment="prod",
            features={"close_price": math.nan, "rsi_14d": -1.0},
            correlations={"close_price": 3.0},
        )
    text = str(raised.value)
    assert "4 problems" in text
    assert "nothing written" in text


def test_bad_single_record_in_a_batch_refuses_all(store, engine):
    good = {
        "feature_name": "close_price",
        "used_by_model": "a",
        "model_version": "1",
        "environment": "dev",
    }
    with pytest.raises(UsageError, match="correlation_with_target"):
        store.record_usage_batch([good, {**good, "correlation_with_target": -7}])
    with pytest.raises(UsageError, match="unknown field"):
        store.record_usage_batch([good, {**good, "feature_importanc": 0.2}])
    with pytest.raises(UsageError, match="no usage records"):
        store.record_usage_batch([])
    assert usage_rows(engine) == 0


def test_record_feature_usage_unknown_feature(store, engine):
    with pytest.raises(UnknownFeatureError, match="unknown feature 'rsi_14'.*rsi_14d"):
        store.record_feature_usage(
            feature_name="rsi_14", used_by_model="m", model_version="1", environment="dev"
        )
    assert usage_rows(engine) == 0


# --- reading ------------------------------------------------------------------------------------


def test_history_is_newest_first_and_limited(store):
    for day in range(5):
        store.record_feature_usage(
            feature_name="rsi_14d",
            used_by_model=f"model_{day}",
            model_version="1",
            environment="staging",
            usage_timestamp=T0 + timedelta(days=day),
        )
    history = store.get_feature_usage_history("rsi_14d", limit=3)
    assert [h.used_by_model for h in history] == ["model_4", "model_3", "model_2"]
    assert store.get_feature_usage_history("momentum_signal") == []
    with pytest.raises(UnknownFeatureError):
        store.get_feature_usage_history("nope")
    with pytest.raises(UsageError, match="limit"):
        store.get_feature_usage_history("rsi_14d", limit=0)


def test_statistics_are_sql_aggregates_with_breakdowns(store):
    run(
        store,
        used_by_model="a",
        environment="production",
        features={"close_price": 0.2},
        correlations={"close_price": 0.5},
    )
    run(
        store,
        used_by_model="a",
        environment="staging",
        usage_timestamp=T0 + timedelta(days=1),
        features={"close_price": 0.4},
        correlations={"close_price": -0.1},
        feature_versions={"close_price": "1.0.0"},
    )
    run(
        store,
        used_by_model="b",
        environment="production",
        usage_timestamp=T0 - timedelta(1),
        features={"close_price": None},
        correlations={},
    )
    stats = store.get_feature_statistics("close_price")
    assert stats.total_usage == 3
    assert stats.usage_count == 3
    assert stats.unique_models == 2
    assert stats.environments == ["staging", "production"]
    assert stats.avg_importance == pytest.approx(0.3)
    assert stats.avg_correlation == pytest.approx(0.2)
    assert stats.first_used_at == T0 - timedelta(days=1)
    assert stats.last_used_at == T0 + timedelta(days=1)
    assert stats.current_version == "1.1.0"
    assert [(v.feature_version, v.usage_count, v.unique_models) for v in stats.by_version] == [
        ("1.1.0", 2, 2),
        ("1.0.0", 1, 1),
    ]
    model_a = stats.by_model[0]
    assert (model_a.used_by_model, model_a.usage_count) == ("a", 2)
    assert model_a.environments == ["staging", "production"]
    assert model_a.feature_versions == ["1.1.0", "1.0.0"]
    assert model_a.avg_importance == pytest.approx(0.3)
    assert stats.by_model[1].avg_importance is None
    assert [(e.environment, e.usage_count, e.unique_models) for e in stats.by_environment] == [
        ("staging", 1, 1),
        ("production", 2, 2),
    ]


def test_statistics_of_an_unused_feature(store):
    stats = store.get_feature_statistics("momentum_signal")
    assert (stats.total_usage, stats.unique_models, stats.environments) == (0, 0, [])
    assert stats.avg_importance is None and stats.last_used_at is None
    assert stats.by_version == stats.by_model == stats.by_environment == []
    with pytest.raises(UnknownFeatureError):
        store.get_feature_statistics("nope")


def test_statistics_json_uses_the_api_field_names(store):
    run(store)
    data = store.get_feature_statistics("close_price").model_dump(mode="json")
    for field in (
        "total_usage",
        "unique_models",
        "environments",
        "avg_importance",
        "avg_correlation",
        "last_used_at",
    ):
        assert field in data


# --- Dagster UI metadata ------------------------------------------------------------------------


def test_usage_metadata_per_feature(store, engine):
    run(store, used_by_model="a", features={"close_price": 0.2, "rsi_14d": 0.9}, correlations={})
    run(
        store,
        used_by_model="b",
        features={"close_price": 0.6},
        correlations={},
        usage_timestamp=T0 + timedelta(hours=2),
    )
    summary = usage_summary(engine)
    assert summary["close_price"]["usage_count"] == 2
    assert summary["close_price"]["unique_models"] == 2
    assert [m["used_by_model"] for m in summary["close_price"]["top_models"]] == ["b", "a"]
    assert summary["close_price"]["last_used_at"] == T0 + timedelta(hours=2)
    assert "momentum_signal" not in summary
    metadata = usage_metadata(engine)
    assert metadata["close_price"]["usage_count"].value == 2
    assert "| b |" in metadata["close_price"]["top_models"].value


def test_registry_usage_metadata_never_creates_a_registry(tmp_path):
    missing = tmp_path / "nested" / "registry.db"
    assert registry_usage_metadata(f"sqlite:///{missing}") == {}
    assert not missing.exists() and not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert registry_usage_metadata(f"sqlite:///{empty}") == {}
    assert empty.read_bytes() == b""
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2"
    assert registry_usage_metadata(unreachable) == {}


def test_registry_usage_metadata_reads_a_sqlite_file(tmp_path):
    path = tmp_path / "registry.db"
    engine = sqlite_usage_engine(path)
    seed_usage_registry(engine)
    run(usage_host(usage_graph(), engine), features={"close_price": 0.5}, correlations={})
    engine.dispose()
    metadata = registry_usage_metadata(f"sqlite:///{path}")
    assert set(metadata) == {"close_price"}


def test_unreachable_registry_is_a_registry_error(tmp_path):
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/x?connect_timeout=2")
    store = usage_host(usage_graph(), engine)
    with pytest.raises(RegistryError, match="cannot use the registry"):
        store.get_feature_statistics("close_price")


# --- concurrency: real processes ----------------------------------------------------------------

WRITERS = 6
RECORDS_PER_WRITER = 250


def _writer(url: str, writer: int, barrier) -> None:
    engine = create_engine(url)
    if url.startswith("sqlite"):
        from featurestore_dagster.registry.usage import enable_sqlite_concurrency

        enable_sqlite_concurrency(engine)
    store = usage_host(usage_graph(), engine)
    record = {
        "feature_name": "close_price",
        "used_by_model": f"model_{writer}",
        "model_version": "1",
        "environment": "production",
        "feature_importance": 0.3,
    }
    barrier.wait()
    written = 0
    while written < RECORDS_PER_WRITER:
        if written % 5 == 0:
            # Two records of one feature in one transaction: the counter moves by 2 at once.
            store.record_usage_batch([record, {**record, "execution_id": f"{writer}-{written}"}])
            written += 2
        else:
            store.record_feature_usage(**record)
            written += 1
    engine.dispose()


def test_concurrent_writers_lose_nothing(engine):
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    processes = [context.Process(target=_writer, args=(url, n, barrier)) for n in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    total = WRITERS * RECORDS_PER_WRITER
    assert usage_rows(engine) == total
    assert counters(engine)["close_price"][0] == total
    stats = usage_host(usage_graph(), engine).get_feature_statistics("close_price")
    assert stats.total_usage == stats.usage_count == total
    assert stats.unique_models == WRITERS


# --- through FeatureStore (the real host) and the Dagster code location --------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def feature_store(request, definitions_folder, store_env, monkeypatch):
    from featurestore_dagster.store import FeatureStore
    from tests.conftest import usage_payloads

    for payload in usage_payloads():
        definitions_folder.write(payload)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database_url")
        engine = create_engine(url)
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
        monkeypatch.setenv("FEATURESTORE_REGISTRY_URL", url)
    store = FeatureStore()
    store.apply()
    return store


def test_through_feature_store(feature_store):
    records = feature_store.record_model_usage(
        used_by_model="ranker",
        model_version="3.0.0",
        environment="production",
        features={"close_price": 0.5, "momentum_signal": 0.25},
        correlations={"momentum_signal": 0.4},
    )
    assert [r.feature_version for r in records] == ["1.1.0", "1.0.0"]
    one = feature_store.record_feature_usage(
        feature_name="close_price",
        used_by_model="sizer",
        model_version="1",
        environment="dev",
        feature_importance=1.5,
        correlation_with_target=-0.2,
    )
    stats = feature_store.get_feature_statistics("close_price")
    assert (stats.total_usage, stats.unique_models, stats.usage_count) == (2, 2, 2)
    assert stats.avg_importance == pytest.approx(1.0)
    assert feature_store.get_feature_usage_history("close_price")[0] == one
    lineage = feature_store.get_feature_lineage("momentum_signal", recursive=True)
    assert lineage.all_upstream == ["close_price", "daily_return", "rsi_14d"]
    assert [m.used_by_model for m in lineage.consuming_models] == ["ranker"]
    info = feature_store.get_feature("close_price")
    assert info.usage_count == 2 and info.last_used_at == one.usage_timestamp


def test_code_location_shows_usage_metadata(feature_store):
    import dagster as dg

    from featurestore_dagster.orchestration.definitions import code_location

    feature_store.record_model_usage(
        used_by_model="ranker",
        model_version="3.0.0",
        environment="production",
        features={"close_price": 0.5},
    )
    graph = code_location().resolve_asset_graph()
    metadata = graph.get(dg.AssetKey(["features", "close_price"])).metadata
    assert metadata["usage_count"].value == 1
    assert metadata["unique_models"].value == 1
    assert "ranker" in metadata["top_models"].value
    assert "usage_count" not in graph.get(dg.AssetKey(["features", "rsi_14d"])).metadata


def _model_runner(url: str, writer: int, barrier) -> None:
    engine = create_engine(url)
    store = usage_host(usage_graph(), engine)
    names = ["close_price", "daily_return", "rsi_14d"]
    barrier.wait()
    for run in range(MODEL_RUNS):
        # Each writer lists the features in another order: the counters must still be
        # updated in one lock order (no deadlock on PostgreSQL, nothing lost anywhere).
        order = names[writer % 3 :] + names[: writer % 3]
        if writer % 2:
            order.reverse()
        store.record_model_usage(
            used_by_model=f"model_{writer}",
            model_version="1",
            environment="staging",
            features=dict.fromkeys(order, 0.5),
            execution_id=f"{writer}-{run}",
        )
    engine.dispose()


MODEL_RUNS = 40
MODEL_WRITERS = 4


def test_concurrent_model_runs_in_any_feature_order(engine):
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(MODEL_WRITERS)
    processes = [
        context.Process(target=_model_runner, args=(url, n, barrier)) for n in range(MODEL_WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [p.exitcode for p in processes] == [0] * MODEL_WRITERS
    assert usage_rows(engine) == 3 * MODEL_RUNS * MODEL_WRITERS
    counts = counters(engine)
    for name in ("close_price", "daily_return", "rsi_14d"):
        assert counts[name][0] == MODEL_RUNS * MODEL_WRITERS


def test_bulk_and_single_writes_store_times_alike(store, engine):
    """The bulk path (driver executemany) and the single path (SQLAlchemy) must store times
    in one format, or ordering and last_used_at comparisons would mix formats on SQLite."""
    store.record_usage_batch(
        [
            {
                "feature_name": "rsi_14d",
                "used_by_model": "bulk",
                "model_version": "1",
                "environment": "dev",
                "usage_timestamp": T0 + timedelta(hours=1),
            },
            {
                "feature_name": "rsi_14d",
                "used_by_model": "bulk",
                "model_version": "1",
                "environment": "dev",
                "usage_timestamp": T0 - timedelta(hours=1),
            },
        ]
    )
    store.record_feature_usage(
        feature_name="rsi_14d",
        used_by_model="single",
        model_version="1",
        environment="dev",
        usage_timestamp=T0,
    )
    history = store.get_feature_usage_history("rsi_14d")
    assert [h.usage_timestamp for h in history] == [
        T0 + timedelta(hours=1),
        T0,
        T0 - timedelta(hours=1),
    ]
    assert counters(engine)["rsi_14d"] == (3, T0 + timedelta(hours=1))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            stored = [
                value
                for (value,) in conn.exec_driver_sql("SELECT usage_timestamp FROM feature_usage")
            ]
            stored += [
                value
                for (value,) in conn.exec_driver_sql(
                    "SELECT last_used_at FROM features WHERE last_used_at IS NOT NULL"
                )
            ]
        assert {len(value) for value in stored} == {len("2024-03-01 12:00:00.000000")}
