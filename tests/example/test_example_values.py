"""The bundled example feature set: definitions, raw data, and the values the engine writes.

The value tests run ``featurestore materialize`` once (a subprocess, 40 symbols) and compare
every feature table with an independent numpy/pandas computation from the raw tables. The
reference code here deliberately works differently from the definitions (date x symbol
matrices, explicit recurrences as TA-Lib writes them), and never imports
``featurestore_example.transforms``.

Tolerances: ``rtol=1e-9`` everywhere. Values that cross zero get an ``atol`` a few orders of
magnitude above the rounding noise of their computation: DuckDB's window aggregates (segment
trees, streaming variance) and pandas' recurrences sum in a different order than numpy, which
moves results by ~1e-15 relative to the inputs' scale (prices up to ~4,000, so ~1e-12 on a
MACD, a difference of two EMAs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from numpy.lib.stride_tricks import sliding_window_view

from featurestore_dagster.definitions.models import FeatureDefinition, RuleType
from featurestore_example.data import ensure_raw_data

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = REPO / "feature_definitions"
SYMBOLS = 40
BUSINESS_DAYS = 1305  # Monday-Friday, 2020-01-01 .. 2024-12-31
RAW_TABLES = ("daily_prices", "fundamentals", "macro_series")


# --- definitions (no engine needed) ---------------------------------------------------------


def load_definitions() -> dict[str, FeatureDefinition]:
    definitions: dict[str, FeatureDefinition] = {}
    for path in sorted([*DEFINITIONS.rglob("*.yaml"), *DEFINITIONS.rglob("*.yml")]):
        document = yaml.safe_load(path.read_text())
        for item in document["features"] if "features" in document else [document]:
            definition = FeatureDefinition.model_validate(item)
            assert definition.feature_name not in definitions, f"{path}: repeated name"
            definitions[definition.feature_name] = definition
    return definitions


def dependency_levels(definitions: dict[str, FeatureDefinition]) -> dict[str, int]:
    levels: dict[str, int] = {}

    def level(name: str, path: tuple[str, ...] = ()) -> int:
        assert name not in path, f"cycle {path + (name,)}"
        if name not in levels:
            upstream = definitions[name].upstream_features
            levels[name] = 1 + max((level(u, path + (name,)) for u in upstream), default=-1)
        return levels[name]

    for name in definitions:
        level(name)
    return levels


def test_definitions_form_a_realistic_example_set() -> None:
    definitions = load_definitions()
    levels = dependency_levels(definitions)

    assert 14 <= len(definitions) <= 20
    assert len({d.feature_type for d in definitions.values()}) >= 4
    assert max(levels.values()) >= 3
    assert levels["stock_beta_60d"] == 3
    used_rules = {rule.rule_type for d in definitions.values() for rule in d.validation_rules}
    assert used_rules == set(RuleType)
    blocking = {rule.is_blocking for d in definitions.values() for rule in d.validation_rules}
    assert blocking == {True, False}
    assert any(d.schedule for d in definitions.values())
    assert any(not d.entity_columns for d in definitions.values())
    assert any(d.transformation.transformation_type == "python" for d in definitions.values())
    assert any("features" in yaml.safe_load(p.read_text()) for p in DEFINITIONS.rglob("*.yaml"))
    for name, d in definitions.items():
        assert d.version == "1.0.0" and d.status == "active", name
        assert d.description and d.owner and d.tags and d.changelog == "Initial version", name
        assert d.timestamp_column == "date", name
        for upstream in d.upstream_features:
            assert upstream in definitions, f"{name}: unknown upstream {upstream}"
        code = d.transformation.code
        for parameter in d.transformation.parameters:
            if d.transformation.transformation_type == "sql":
                assert f"{{{{ {parameter} }}}}" in code, f"{name}: parameter {parameter} unused"


# --- raw data generator (no engine needed) --------------------------------------------------


def raw_snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        table: conn.execute(f"SELECT * FROM raw.{table} ORDER BY ALL").fetchall()
        for table in RAW_TABLES
    }


def test_ensure_raw_data_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FEATURESTORE_EXAMPLE_SYMBOLS", "12")
    snapshots = []
    for name in ("a.duckdb", "b.duckdb"):
        with duckdb.connect(str(tmp_path / name)) as conn:
            ensure_raw_data(conn)
            snapshots.append(raw_snapshot(conn))
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0]["daily_prices"]) == 12 * BUSINESS_DAYS


def test_ensure_raw_data_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FEATURESTORE_EXAMPLE_SYMBOLS", "5")
    with duckdb.connect(str(tmp_path / "f.duckdb")) as conn:
        ensure_raw_data(conn)
        first = raw_snapshot(conn)
        # Existing tables are left alone, even if the symbol count asked for changes...
        monkeypatch.setenv("FEATURESTORE_EXAMPLE_SYMBOLS", "7")
        ensure_raw_data(conn)
        assert raw_snapshot(conn) == first
        # ...and only a missing table is created again.
        conn.execute("DROP TABLE raw.macro_series")
        monkeypatch.setenv("FEATURESTORE_EXAMPLE_SYMBOLS", "5")
        ensure_raw_data(conn)
        assert raw_snapshot(conn) == first


def test_symbol_count_only_adds_symbols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Symbol i gets the same prices and reports whatever the symbol count."""
    snapshots = []
    for count in (3, 8):
        monkeypatch.setenv("FEATURESTORE_EXAMPLE_SYMBOLS", str(count))
        with duckdb.connect(str(tmp_path / f"{count}.duckdb")) as conn:
            ensure_raw_data(conn)
            snapshots.append(raw_snapshot(conn))
    small, large = snapshots
    assert set(small["daily_prices"]) < set(large["daily_prices"])
    assert set(small["fundamentals"]) < set(large["fundamentals"])
    assert small["macro_series"] == large["macro_series"]


def test_raw_data_default_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEATURESTORE_EXAMPLE_SYMBOLS", raising=False)
    with duckdb.connect() as conn:
        ensure_raw_data(conn)
        stats = conn.execute(
            "SELECT count(*), count(DISTINCT symbol), count(DISTINCT date), min(date), max(date),"
            " count(*) FILTER (WHERE isodow(date) > 5),"
            " count(*) FILTER (WHERE NOT (low <= least(open, close)"
            "   AND high >= greatest(open, close) AND low > 0 AND volume > 0))"
            " FROM raw.daily_prices"
        ).fetchall()[0]
        assert stats[:3] == (500 * BUSINESS_DAYS, 500, BUSINESS_DAYS)
        assert (str(stats[3]), str(stats[4])) == ("2020-01-01", "2024-12-31")
        assert stats[5:] == (0, 0)
        types = dict(
            conn.execute(
                "SELECT column_name, column_type FROM (DESCRIBE raw.daily_prices)"
            ).fetchall()
        )
        assert types == {
            "symbol": "VARCHAR",
            "date": "DATE",
            "open": "DOUBLE",
            "high": "DOUBLE",
            "low": "DOUBLE",
            "close": "DOUBLE",
            "volume": "BIGINT",
        }
        quarters = conn.execute(
            "SELECT min(n), max(n)"
            " FROM (SELECT count(*) AS n FROM raw.fundamentals GROUP BY symbol)"
        ).fetchall()[0]
        assert quarters == (24, 24)
        assert conn.execute("SELECT count(*) FROM raw.macro_series").fetchall() == [
            (BUSINESS_DAYS,)
        ]


# --- the engine's output ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """Run ``featurestore materialize`` once on a fresh folder and open its lake read-only
    (the bootstrap hook loaded the raw tables into the same lake)."""
    folder = tmp_path_factory.mktemp("example_store")
    env = {
        **os.environ,
        "FEATURESTORE_LAKE_CATALOG": f"sqlite:{folder / 'lake.sqlite'}",
        "FEATURESTORE_LAKE_DATA": str(folder / "lake"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{folder / 'r.db'}",
        "FEATURESTORE_DEFINITIONS": str(DEFINITIONS),
        "FEATURESTORE_EXAMPLE_SYMBOLS": str(SYMBOLS),
    }
    result = subprocess.run(
        [sys.executable, "-m", "featurestore_dagster.cli", "materialize"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(
            f"featurestore materialize exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    from tests.conftest import open_test_lake

    conn = open_test_lake(env, read_only=True)
    yield conn
    conn.close()


@dataclass(frozen=True)
class Raw:
    """The raw tables as date x symbol matrices (every symbol trades every business day)."""

    dates: np.ndarray  # datetime64, ascending
    symbols: np.ndarray  # sorted
    close: np.ndarray  # (dates, symbols)
    volume: np.ndarray
    fundamentals: pd.DataFrame
    macro: pd.DataFrame


@pytest.fixture(scope="module")
def raw(store: duckdb.DuckDBPyConnection) -> Raw:
    prices = store.execute("SELECT * FROM raw.daily_prices").df()
    close = prices.pivot(index="date", columns="symbol", values="close").sort_index()
    volume = prices.pivot(index="date", columns="symbol", values="volume").sort_index()
    assert close.shape == (BUSINESS_DAYS, SYMBOLS) and not close.isna().any().any()
    return Raw(
        dates=close.index.to_numpy(),
        symbols=close.columns.to_numpy(),
        close=close.to_numpy(dtype=float),
        volume=volume[close.columns].to_numpy(dtype=float),
        fundamentals=store.execute(
            "SELECT * FROM raw.fundamentals ORDER BY symbol, report_date"
        ).df(),
        macro=store.execute("SELECT * FROM raw.macro_series ORDER BY date").df(),
    )


def long_form(raw: Raw, values: np.ndarray, name: str) -> pd.DataFrame:
    """Matrix -> (symbol, date, value) rows, leaving out the NaN (warm-up) cells."""
    frame = pd.DataFrame(values, index=raw.dates, columns=raw.symbols)
    frame = frame.rename_axis(index="date", columns="symbol").stack().dropna().rename(name)
    return frame.reset_index()[["symbol", "date", name]]


def shifted(values: np.ndarray, window: int, statistic: Callable[[np.ndarray], np.ndarray]):
    """``statistic`` over the trailing ``window`` rows, NaN where the window is incomplete."""
    out = np.full(values.shape, np.nan)
    out[window - 1 :] = statistic(sliding_window_view(values, window, axis=0))
    return out


def simple_returns(raw: Raw) -> np.ndarray:
    returns = np.full(raw.close.shape, np.nan)
    returns[1:] = raw.close[1:] / raw.close[:-1] - 1.0
    return returns


def market_returns(raw: Raw) -> np.ndarray:
    return np.concatenate([[np.nan], simple_returns(raw)[1:].mean(axis=1)])


def sma(raw: Raw, period: int = 20) -> np.ndarray:
    return shifted(raw.close, period, lambda w: w.mean(axis=-1))


def talib_rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """TA-Lib's RSI loop (ta_RSI.c, default unstable period), over all symbols at once."""
    out = np.full(close.shape, np.nan)
    change = np.diff(close, axis=0)
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    avg_gain = gain[:period].sum(axis=0) / period
    avg_loss = loss[:period].sum(axis=0) / period
    for t in range(period, close.shape[0]):
        if t > period:
            avg_gain = (avg_gain * (period - 1) + gain[t - 1]) / period
            avg_loss = (avg_loss * (period - 1) + loss[t - 1]) / period
        total = avg_gain + avg_loss
        out[t] = np.where(total != 0, 100.0 * avg_gain / np.where(total != 0, total, 1), 0.0)
    return out


def ema_seeded_by_first(close: np.ndarray, span: int) -> np.ndarray:
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(close)
    out[0] = close[0]
    for t in range(1, close.shape[0]):
        out[t] = alpha * close[t] + (1.0 - alpha) * out[t - 1]
    return out


def macd(raw: Raw) -> np.ndarray:
    line = ema_seeded_by_first(raw.close, 12) - ema_seeded_by_first(raw.close, 26)
    line[:25] = np.nan
    return line


def eps_ttm(raw: Raw) -> pd.DataFrame:
    rows = []
    for symbol, reports in raw.fundamentals.groupby("symbol"):
        eps = reports["eps"].to_numpy()
        ttm = np.array([eps[i - 3 : i + 1].sum() for i in range(3, len(eps))])
        rows.append(
            pd.DataFrame(
                {"symbol": symbol, "date": reports["report_date"].to_numpy()[3:], "v": ttm}
            )
        )
    return pd.concat(rows, ignore_index=True).rename(columns={"v": "stock_eps_ttm"})


def expected_close(raw: Raw) -> pd.DataFrame:
    return long_form(raw, raw.close, "stock_daily_close")


def expected_volume(raw: Raw) -> pd.DataFrame:
    return long_form(raw, raw.volume, "stock_daily_volume")


def expected_return(raw: Raw) -> pd.DataFrame:
    return long_form(raw, simple_returns(raw), "stock_daily_return")


def expected_sma(raw: Raw) -> pd.DataFrame:
    return long_form(raw, sma(raw), "stock_sma_20d")


def expected_rsi(raw: Raw) -> pd.DataFrame:
    return long_form(raw, talib_rsi(raw.close), "stock_rsi_14d")


def expected_macd(raw: Raw) -> pd.DataFrame:
    return long_form(raw, macd(raw), "stock_macd")


def expected_bollinger(raw: Raw) -> pd.DataFrame:
    std = shifted(raw.close, 20, lambda w: w.std(axis=-1, ddof=0))
    middle = sma(raw)
    lower, upper = middle - 2.0 * std, middle + 2.0 * std
    return long_form(raw, (raw.close - lower) / (upper - lower), "stock_bollinger_pctb_20d")


def expected_volatility(raw: Raw) -> pd.DataFrame:
    returns = simple_returns(raw)[1:]
    vol = np.full(raw.close.shape, np.nan)
    vol[1:] = shifted(returns, 20, lambda w: w.std(axis=-1, ddof=1)) * np.sqrt(252.0)
    return long_form(raw, vol, "stock_volatility_20d")


def expected_volume_zscore(raw: Raw) -> pd.DataFrame:
    mean = shifted(raw.volume, 20, lambda w: w.mean(axis=-1))
    std = shifted(raw.volume, 20, lambda w: w.std(axis=-1, ddof=1))
    return long_form(raw, (raw.volume - mean) / std, "stock_volume_zscore_20d")


def expected_market_return(raw: Raw) -> pd.DataFrame:
    market = market_returns(raw)
    return pd.DataFrame({"date": raw.dates[1:], "market_return": market[1:]})


def expected_beta(raw: Raw, window: int = 60) -> pd.DataFrame:
    returns, market = simple_returns(raw)[1:], market_returns(raw)[1:]
    r_windows = sliding_window_view(returns, window, axis=0)  # (n, symbols, window)
    m_windows = sliding_window_view(market, window)[:, None, :]  # (n, 1, window)
    m_dev = m_windows - m_windows.mean(axis=-1, keepdims=True)
    r_dev = r_windows - r_windows.mean(axis=-1, keepdims=True)
    beta = np.full(raw.close.shape, np.nan)
    beta[window:] = (r_dev * m_dev).sum(axis=-1) / (m_dev**2).sum(axis=-1)
    return long_form(raw, beta, "stock_beta_60d")


def expected_trend_signal(raw: Raw) -> pd.DataFrame:
    close, middle, line = raw.close, sma(raw), macd(raw)
    signal = np.where(
        (close > middle) & (line > 0), 1, np.where((close < middle) & (line < 0), -1, 0)
    )
    signal = np.where(np.isnan(middle) | np.isnan(line), np.nan, signal)
    frame = long_form(raw, signal, "stock_trend_signal")
    return frame.astype({"stock_trend_signal": np.int64})


def expected_eps_ttm(raw: Raw) -> pd.DataFrame:
    return eps_ttm(raw)


def expected_pe_ratio(raw: Raw) -> pd.DataFrame:
    ttm = eps_ttm(raw)
    pe = np.full(raw.close.shape, np.nan)
    for column, symbol in enumerate(raw.symbols):
        reports = ttm[ttm["symbol"] == symbol]
        latest = np.searchsorted(reports["date"].to_numpy(), raw.dates, side="right") - 1
        earnings = np.where(latest >= 0, reports["stock_eps_ttm"].to_numpy()[latest], np.nan)
        pe[:, column] = np.where(earnings > 0, raw.close[:, column] / earnings, np.nan)
    return long_form(raw, pe, "stock_pe_ratio")


def expected_treasury(raw: Raw) -> pd.DataFrame:
    return raw.macro[["date", "treasury_10y"]].rename(
        columns={"treasury_10y": "treasury_10y_yield"}
    )


def expected_rate_regime(raw: Raw) -> pd.DataFrame:
    yields = raw.macro["treasury_10y"].to_numpy()
    change_bp = (yields[20:] - yields[:-20]) * 100
    regime = np.where(change_bp > 25, "rising", np.where(change_bp < -25, "falling", "stable"))
    return pd.DataFrame({"date": raw.macro["date"].to_numpy()[20:], "rate_regime_20d": regime})


# feature -> (reference, atol); rtol is 1e-9 for every float feature.
EXPECTED: dict[str, tuple[Callable[[Raw], pd.DataFrame], float]] = {
    "stock_daily_close": (expected_close, 0.0),
    "stock_daily_volume": (expected_volume, 0.0),
    "stock_daily_return": (expected_return, 1e-12),
    "stock_sma_20d": (expected_sma, 0.0),
    "stock_rsi_14d": (expected_rsi, 1e-9),
    "stock_macd": (expected_macd, 1e-8),
    "stock_bollinger_pctb_20d": (expected_bollinger, 1e-9),
    "stock_volatility_20d": (expected_volatility, 1e-12),
    "stock_volume_zscore_20d": (expected_volume_zscore, 1e-9),
    "market_return": (expected_market_return, 1e-12),
    "stock_beta_60d": (expected_beta, 1e-9),
    "stock_trend_signal": (expected_trend_signal, 0.0),
    "stock_eps_ttm": (expected_eps_ttm, 0.0),
    "stock_pe_ratio": (expected_pe_ratio, 0.0),
    "treasury_10y_yield": (expected_treasury, 0.0),
    "rate_regime_20d": (expected_rate_regime, 0.0),
}


def test_every_feature_has_a_reference() -> None:
    assert set(EXPECTED) == set(load_definitions())


def as_key(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy().astype("datetime64[D]")
    return column.to_numpy(dtype=object)


def read_feature(store: duckdb.DuckDBPyConnection, definition: FeatureDefinition):
    keys = definition.key_columns
    frame = store.execute(f"SELECT * FROM {definition.table_name} ORDER BY {', '.join(keys)}").df()
    return frame


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_values_match_reference(store: duckdb.DuckDBPyConnection, raw: Raw, name: str):
    definition = load_definitions()[name]
    keys = definition.key_columns
    actual = read_feature(store, definition)
    reference, atol = EXPECTED[name]
    expected = reference(raw).sort_values(keys).reset_index(drop=True)

    assert list(actual.columns) == [*keys, name]
    assert len(actual) == len(expected), f"{name}: {len(actual)} rows, expected {len(expected)}"
    for key in keys:
        np.testing.assert_array_equal(
            as_key(actual[key]), as_key(expected[key]), err_msg=f"{name}: {key}"
        )
    if definition.data_type == "float":
        np.testing.assert_allclose(
            actual[name].to_numpy(dtype=float),
            expected[name].to_numpy(dtype=float),
            rtol=1e-9,
            atol=atol,
            err_msg=name,
        )
    elif definition.data_type == "integer":
        np.testing.assert_array_equal(
            actual[name].to_numpy(dtype=np.int64), expected[name].to_numpy(dtype=np.int64)
        )
    else:
        np.testing.assert_array_equal(
            actual[name].to_numpy(dtype=object), expected[name].to_numpy(dtype=object)
        )


def test_feature_tables_have_declared_types(store: duckdb.DuckDBPyConnection) -> None:
    sql_types = {"float": "DOUBLE", "integer": "INTEGER", "string": "VARCHAR"}
    for name, definition in load_definitions().items():
        schema = dict(
            store.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE {definition.table_name})"
            ).fetchall()
        )
        assert schema.get("date") == "DATE", name
        for entity in definition.entity_columns:
            assert schema.get(entity) == "VARCHAR", name
        value_type = schema.get(name)
        if definition.data_type == "integer":
            assert value_type in {"INTEGER", "BIGINT"}, name
        else:
            assert value_type == sql_types[definition.data_type], name


def test_example_has_signal_in_it(raw: Raw) -> None:
    """The generator's market factor makes betas meaningful: they spread around 1."""
    betas = expected_beta(raw)["stock_beta_60d"]
    assert 0.7 < betas.mean() < 1.3 and betas.std() > 0.1
    regimes = set(expected_rate_regime(raw)["rate_regime_20d"])
    assert regimes == {"rising", "falling", "stable"}
