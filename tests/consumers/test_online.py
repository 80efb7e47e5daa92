"""Latest values through ``FeatureStore.get_online_features`` on a real lake."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from featurestore_dagster.errors import TrainingSetError, UnknownFeatureError
from tests.conftest import open_test_lake


def test_latest_values_and_timestamps(published):
    store = published.store()
    now = dt.datetime.now(dt.UTC)
    result = store.get_online_features(
        [{"symbol": "AAA"}, {"symbol": "ZZZ"}, {"symbol": "BBB"}, {"symbol": "AAA"}],
        ["close_price"],
    )
    rows = result.to_dict()
    assert [r["symbol"] for r in rows] == ["AAA", "ZZZ", "BBB", "AAA"]  # order kept
    assert rows[0]["close_price"] == 1290.0  # version 1.1.0: close * 10, last day
    assert rows[0]["close_price__timestamp"] == dt.date(2024, 1, 30)
    assert rows[1]["close_price"] is None and rows[1]["close_price__timestamp"] is None
    assert rows[2]["close_price"] == 2280.0
    # Older than the TTL (from now): NULL, value and timestamp.
    age = (now.date() - dt.date(2024, 1, 30)).days
    expired = store.get_online_features([{"symbol": "AAA"}], ["close_price"], ttl="1d")
    assert expired.to_dict()[0]["close_price"] is None
    fresh = store.get_online_features(
        pd.DataFrame({"symbol": ["AAA"]}), ["close_price"], ttl=f"{age + 2}d"
    )
    assert fresh.to_pandas()["close_price"].tolist() == [1290.0]


def test_global_series_and_definition_ttl(published):
    store = published.store()
    # rate has ttl: 10d in its definition: its last value (2024-01-29) is long expired.
    result = store.get_online_features(
        [{"symbol": "AAA"}], ["rate", "close_price"], ttl={"rate": "36500d"}
    )
    assert result.to_dict()[0]["rate"] == pytest.approx(4.28)
    default = store.get_online_features([{"symbol": "AAA"}], ["rate"])
    assert default.to_dict()[0]["rate"] is None


def test_bad_requests(published):
    store = published.store()
    with pytest.raises(UnknownFeatureError):
        store.get_online_features([{"symbol": "AAA"}], ["nope"])
    with pytest.raises(TrainingSetError, match="lack key column"):
        store.get_online_features([{"ticker": "AAA"}], ["close_price"])
    with pytest.raises(TrainingSetError, match="empty"):
        store.get_online_features([], ["close_price"])
    with pytest.raises(TrainingSetError, match="drop the version"):
        store.get_online_features([{"symbol": "AAA"}], ["close_price@1"])
    with pytest.raises(TrainingSetError, match="is int64 but the feature.s key is string"):
        store.get_online_features([{"symbol": 1}], ["close_price"])


def test_a_new_commit_is_seen_by_the_next_lookup(published):
    store = published.store()
    before = store.get_online_features([{"symbol": "AAA"}], ["close_price"]).to_dict()[0]
    conn = open_test_lake(published.env)
    try:
        conn.execute("UPDATE _latest.close_price SET close_price = -1.0 WHERE symbol = 'AAA'")
        after = store.get_online_features([{"symbol": "AAA"}], ["close_price"]).to_dict()[0]
        assert after["close_price"] == -1.0
    finally:
        conn.execute(
            f"UPDATE _latest.close_price SET close_price = {before['close_price']}"
            " WHERE symbol = 'AAA'"
        )
        conn.close()


def test_small_and_large_lookups_agree(published):
    """Up to SMALL_LOOKUP_ROWS entities probe a dictionary, more use Arrow's index_in:
    the same entities (known, unknown, repeated, null) give the same rows either way."""
    from featurestore_dagster.consumers.online import SMALL_LOOKUP_ROWS

    store = published.store()
    symbols = ["AAA", "ZZZ", "BBB", None, "AAA"] * (SMALL_LOOKUP_ROWS // 5 + 2)
    assert len(symbols) > SMALL_LOOKUP_ROWS
    large = store.get_online_features([{"symbol": s} for s in symbols], ["close_price"])
    small = [
        row
        for start in range(0, len(symbols), 5)
        for row in store.get_online_features(
            [{"symbol": s} for s in symbols[start : start + 5]], ["close_price"]
        ).to_dict()
    ]
    assert small == large.to_dict()
    assert [r["close_price"] for r in small[:5]] == [1290.0, None, 2280.0, None, 1290.0]
