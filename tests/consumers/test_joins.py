"""The point-in-time join engine against an independent oracle (pandas.merge_asof).

Generated data: irregular calendars per symbol, spine times before the first and after the
last value, exact timestamp ties, unknown entities, a global series, and every pairing of
DATE / TIMESTAMP / TIMESTAMPTZ between spine and feature.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featurestore_dagster.consumers.joins import FeatureRead, in_spine_order, point_in_time_values
from featurestore_dagster.consumers.spine import ROW_COLUMN, load_spine
from featurestore_dagster.errors import TrainingSetError

DAY = 86400


def _calendar(rng, start: np.datetime64, days: int, density: float) -> np.ndarray:
    keep = rng.random(days) < density
    return start + np.flatnonzero(keep).astype("timedelta64[D]")


def _feature_frame(rng, symbols: list[str], name: str, with_time: bool) -> pd.DataFrame:
    frames = []
    for symbol in symbols:
        dates = _calendar(rng, np.datetime64("2024-01-10"), 120, rng.uniform(0.2, 0.9))
        stamps = dates.astype("datetime64[ns]")
        if with_time:  # an irregular intraday time, distinct per day
            stamps = stamps + rng.integers(0, 86_400, len(stamps)).astype("timedelta64[s]")
        frames.append(
            pd.DataFrame({"symbol": symbol, "ts": stamps, name: rng.normal(size=len(stamps))})
        )
    return pd.concat(frames, ignore_index=True)


def _spine_frame(rng, symbols: list[str], feature: pd.DataFrame, n: int) -> pd.DataFrame:
    # Some spine times are exactly feature times (ties), some before 2024-01-10 and after the
    # last value, some symbols unknown to the feature.
    random_times = np.datetime64("2023-12-20") + rng.integers(0, 150 * DAY, n).astype(
        "timedelta64[s]"
    )
    ties = feature["ts"].to_numpy()[rng.integers(0, len(feature), n // 4)]
    times = np.concatenate([random_times.astype("datetime64[ns]"), ties])
    rng.shuffle(times)
    pool = [*symbols, "UNKNOWN1", "UNKNOWN2"]
    return pd.DataFrame(
        {
            "symbol": np.array(pool)[rng.integers(0, len(pool), len(times))],
            "ts": times,
            "label": rng.normal(size=len(times)),
        }
    )


def _oracle(spine: pd.DataFrame, feature: pd.DataFrame, name: str, by, ttl_seconds):
    left = spine.assign(_row=np.arange(len(spine))).sort_values("ts", kind="stable")
    right = feature.sort_values("ts", kind="stable")
    merged = pd.merge_asof(
        left,
        right[[*by, "ts", name]],
        on="ts",
        by=by or None,
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(seconds=ttl_seconds) if ttl_seconds else None,
    )
    return merged.sort_values("_row")[name].to_numpy()


def _as(kind: str, series: pd.Series):
    if kind == "date":
        return series.dt.normalize().dt.date
    if kind == "timestamptz":
        return series.dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    return series


@pytest.mark.parametrize(
    "spine_kind,feature_kind,ttl_days",
    [
        ("date", "date", None),
        ("date", "date", 7),
        ("timestamp", "date", 5),
        ("timestamp", "timestamp", None),
        ("timestamp", "timestamp", 3),
        ("timestamptz", "timestamp", 4),
        ("timestamp", "timestamptz", 4),
        ("date", "timestamptz", 10),
    ],
)
def test_asof_matches_merge_asof(spine_kind, feature_kind, ttl_days):
    rng = np.random.default_rng(hash((spine_kind, feature_kind, ttl_days)) % 2**32)
    symbols = [f"S{i:02d}" for i in range(12)]
    feature = _feature_frame(rng, symbols, "f", with_time=feature_kind != "date")
    spine = _spine_frame(rng, symbols, feature, 1500)
    if spine_kind == "date":
        spine["ts"] = spine["ts"].dt.normalize()
    if feature_kind == "date":
        feature["ts"] = feature["ts"].dt.normalize()
    macro = pd.DataFrame(
        {"ts": _calendar(rng, np.datetime64("2024-01-15"), 90, 0.3).astype("datetime64[ns]")}
    )
    macro["g"] = rng.normal(size=len(macro))

    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    feature_out = feature.assign(ts=_as(feature_kind, feature["ts"]))
    macro_out = macro.assign(ts=_as(feature_kind, macro["ts"]))
    conn.register("fv", feature_out)
    conn.register("gv", macro_out)
    conn.execute("CREATE TABLE features.f AS SELECT * FROM fv")
    conn.execute("CREATE TABLE features.g AS SELECT * FROM gv")
    # A session time zone far from UTC must not change what a naive timestamp means.
    conn.execute("SET TimeZone = 'Asia/Tokyo'")

    given = spine.assign(ts=_as(spine_kind, spine["ts"]))
    ttl = ttl_days * DAY if ttl_days else None
    reads = [
        FeatureRead("f", "f", '"features"."f"', "f", ("symbol",), "ts", ttl),
        FeatureRead("g", "g", '"features"."g"', "g", (), "ts", ttl),
    ]
    values = point_in_time_values(conn, load_spine(given, conn, "ts"), reads).to_pandas()

    expected_f = _oracle(spine, feature, "f", ["symbol"], ttl)
    expected_g = _oracle(spine, macro, "g", [], ttl)
    np.testing.assert_allclose(values["f"].to_numpy(dtype=float), expected_f, equal_nan=True)
    np.testing.assert_allclose(values["g"].to_numpy(dtype=float), expected_g, equal_nan=True)
    # The generated cases are all present: unknown entities, before-first, ties, expired.
    assert np.isnan(expected_f).any() and (~np.isnan(expected_f)).any()
    assert spine["symbol"].str.startswith("UNKNOWN").any()


def test_ties_take_the_value_at_the_same_time_and_ttl_is_inclusive():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    conn.execute(
        "CREATE TABLE features.f AS SELECT * FROM (VALUES ('a', DATE '2024-01-01', 1.0),"
        " ('a', DATE '2024-01-03', 3.0)) t(symbol, date, f)"
    )
    spine = pa.table(
        {
            "symbol": ["a", "a", "a", "a", "b"],
            "date": pa.array(
                [
                    dt.date(2024, 1, 3),
                    dt.date(2023, 12, 31),
                    dt.date(2024, 1, 5),
                    dt.date(2024, 1, 6),
                    dt.date(2024, 1, 3),
                ]
            ),
        }
    )
    reads = [FeatureRead("f", "f", '"features"."f"', "f", ("symbol",), "date", 2 * DAY)]
    values = point_in_time_values(conn, load_spine(spine, conn, "date"), reads)
    # 01-03: the tie; 12-31: before the first; 01-05: exactly 2 days old (kept);
    # 01-06: 3 days old (expired); b: unknown entity.
    assert values["f"].to_pylist() == [3.0, None, 3.0, None, None]


def test_spine_order_and_duplicates_are_kept():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    conn.execute(
        "CREATE TABLE features.f AS SELECT 'a' AS symbol, DATE '2024-01-01' + i::INTEGER AS date,"
        " i::DOUBLE AS f FROM range(30) t(i)"
    )
    days = [20, 3, 3, 29, 0, 15, 3]
    spine = pd.DataFrame(
        {"symbol": "a", "date": [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in days]}
    )
    reads = [FeatureRead("f", "f", '"features"."f"', "f", ("symbol",), "date")]
    values = point_in_time_values(conn, load_spine(spine, conn, "date"), reads)
    assert values["f"].to_pylist() == [float(d) for d in days]


def test_a_large_spine_comes_back_in_its_own_order():
    """Large enough for DuckDB to join in parallel and hand rows back out of order."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    conn.execute(
        "CREATE TABLE features.f AS SELECT 'S' || (i % 500)::VARCHAR AS symbol,"
        " DATE '2024-01-01' + (i // 500)::INTEGER AS date, i::DOUBLE AS f FROM range(100000) t(i)"
    )
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 600, 300_000)  # 500..599: unknown symbols
    days = rng.integers(0, 200, 300_000)
    spine = pa.table(
        {
            "symbol": [f"S{c}" for c in codes],
            "date": (np.datetime64("2024-01-01") + days).astype("datetime64[D]"),
        }
    )
    reads = [FeatureRead("f", "f", '"features"."f"', "f", ("symbol",), "date")]
    values = point_in_time_values(conn, load_spine(spine, conn, "date"), reads)
    expected = np.where(codes < 500, np.minimum(days, 199) * 500 + codes, np.nan)
    got = values["f"].to_numpy(zero_copy_only=False)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.array_equal(got[codes < 500], expected[codes < 500])


def test_in_spine_order_inverts_any_permutation():
    rows = np.random.default_rng(5).permutation(1000)
    shuffled = pa.table({ROW_COLUMN: rows, "v": rows * 2})
    assert in_spine_order(shuffled).column_names == ["v"]
    assert in_spine_order(shuffled)["v"].to_pylist() == [i * 2 for i in range(1000)]


def test_spine_missing_key_and_wrong_types_are_refused():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    conn.execute(
        "CREATE TABLE features.f AS SELECT 'a' AS symbol, DATE '2024-01-01' AS date, 1.0 AS f"
    )
    reads = [FeatureRead("f", "f", '"features"."f"', "f", ("symbol",), "date")]
    no_key = pd.DataFrame({"ticker": ["a"], "date": [dt.date(2024, 1, 2)]})
    with pytest.raises(TrainingSetError, match="missing key column.*'symbol'"):
        point_in_time_values(conn, load_spine(no_key, conn, "date"), reads)
    int_key = pa.table({"symbol": [1], "date": [dt.date(2024, 1, 2)]})
    with pytest.raises(TrainingSetError, match="spine column 'symbol' is BIGINT"):
        point_in_time_values(conn, load_spine(int_key, conn, "date"), reads)
    with pytest.raises(TrainingSetError, match="not a date or timestamp"):
        load_spine(pd.DataFrame({"symbol": ["a"], "date": ["2024-01-02"]}), conn, "date")
    with pytest.raises(TrainingSetError, match="empty"):
        load_spine(pd.DataFrame({"symbol": [], "date": []}), conn, "date")
