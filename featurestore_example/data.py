"""Deterministic raw market data for the example feature set.

``ensure_raw_data(conn)`` creates, in schema ``raw``:

- ``raw.daily_prices(symbol, date, open, high, low, close, volume)``: one row per symbol and
  business day (Monday to Friday, no holiday calendar) from 2020-01-01 to 2024-12-31
  (1,305 days). Log returns follow a one-factor model, ``r = alpha + beta * market + noise``,
  with a volatility spike around March 2020, so a rolling beta against the market is meaningful.
- ``raw.fundamentals(symbol, sector, fiscal_quarter_end, report_date, eps, revenue)``: quarterly
  results for the quarters ending 2018-12-31 .. 2024-09-30, reported 20-50 days after the
  quarter end (so a trailing-twelve-month EPS exists from before the first price date). EPS is
  positive and tracks the price, which keeps the P/E ratio in a realistic band.
- ``raw.macro_series(date, treasury_10y, treasury_2y, fed_funds_rate)``: daily yields in
  percent on the same business days, shaped after 2020-2024.

Everything is drawn from fixed seeds with one independent random stream per quantity, so the
data is identical on every run, and symbol ``i`` gets the same data whatever the symbol count
(``FEATURESTORE_EXAMPLE_SYMBOLS=40`` gives the first 40 of the default 500). The whole
generation is vectorized numpy -> one ``CREATE TABLE ... AS`` per table.
"""

from __future__ import annotations

import os

import duckdb
import numpy as np

SEED = 20240601
DEFAULT_SYMBOLS = 500
SYMBOLS_ENV = "FEATURESTORE_EXAMPLE_SYMBOLS"
START_DATE = np.datetime64("2020-01-01")
END_DATE = np.datetime64("2024-12-31")
RAW_SCHEMA = "raw"
RAW_TABLES = ("daily_prices", "fundamentals", "macro_series")
SECTORS = (
    "communication_services",
    "consumer_discretionary",
    "consumer_staples",
    "energy",
    "financials",
    "health_care",
    "industrials",
    "information_technology",
    "materials",
    "real_estate",
    "utilities",
)

# Independent random streams: adding a quantity or changing the symbol count never shifts
# the numbers drawn for another quantity or for the first symbols.
_STREAMS = {
    name: index
    for index, name in enumerate(
        [
            "market",
            "symbol_params",
            "idiosyncratic",
            "open_gap",
            "high_wick",
            "low_wick",
            "volume",
            "eps",
            "report_lag",
            "macro",
        ]
    )
}


Columns = dict[str, np.ndarray]


def _rng(stream: str) -> np.random.Generator:
    return np.random.default_rng([SEED, _STREAMS[stream]])


def symbol_count() -> int:
    """The number of symbols to generate: ``FEATURESTORE_EXAMPLE_SYMBOLS`` or 500."""
    text = os.environ.get(SYMBOLS_ENV, "").strip()
    if not text:
        return DEFAULT_SYMBOLS
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"{SYMBOLS_ENV}={text!r} is not a whole number of symbols") from None
    if not 1 <= count <= 26**4:
        raise ValueError(f"{SYMBOLS_ENV}={count} must be between 1 and {26**4}")
    return count


def business_days() -> np.ndarray:
    """Monday-to-Friday dates from START_DATE to END_DATE, as ``datetime64[D]``."""
    days = np.arange(START_DATE, END_DATE + 1, dtype="datetime64[D]")
    return days[np.is_busday(days)]


def symbols(count: int) -> np.ndarray:
    """``count`` distinct four-letter tickers; ticker ``i`` never depends on ``count``."""
    # 7919 is coprime with 26**4, so the codes are a permutation of the ticker space.
    codes = (np.arange(count, dtype=np.int64) * 7919 + 12345) % 26**4
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    ticker = letters[codes // 26**3]
    for power in (2, 1, 0):
        ticker = np.char.add(ticker, letters[(codes // 26**power) % 26])
    return ticker.astype(object)


def _interpolate(days: np.ndarray, anchors: list[tuple[str, float]]) -> np.ndarray:
    x = np.array([np.datetime64(day) for day, _ in anchors]).astype("datetime64[D]")
    return np.interp(
        days.astype(np.int64), x.astype(np.int64), np.array([v for _, v in anchors], dtype=float)
    )


def _smooth_noise(rng: np.random.Generator, size: int, span: int) -> np.ndarray:
    """Stationary, autocorrelated noise with unit standard deviation (white noise filtered by
    an exponential kernel), so yields wander around their anchors without drifting away."""
    kernel = np.exp(-np.arange(4 * span) / span)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = rng.standard_normal(size + kernel.size - 1)
    return np.convolve(white, kernel, mode="valid")


def _epoch_days(days: np.ndarray) -> np.ndarray:
    # DuckDB scans a dict of numpy arrays directly (pyarrow would first import pandas, which
    # alone takes longer than the whole generation), but not datetime64[D]: dates travel as
    # days since 1970-01-01 and become DATE in SQL.
    return days.astype("datetime64[D]").astype(np.int32)


def _gaussian_bump(t: np.ndarray, center: int, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - center) / width) ** 2)


def generate_daily_prices(count: int, days: np.ndarray) -> tuple[Columns, np.ndarray]:
    """The ``raw.daily_prices`` rows and the close matrix (symbols x days)."""
    n_days = days.size
    t = np.arange(n_days)
    crash = int(np.searchsorted(days, np.datetime64("2020-03-16")))

    # Market factor: ~9%/yr drift, ~17%/yr volatility, tripled around the March 2020 crash.
    market = _rng("market")
    drift = 0.00035 - 0.004 * _gaussian_bump(t, crash - 5, 6.0)
    vol = 0.0105 * (1.0 + 2.0 * _gaussian_bump(t, crash, 12.0))
    market_log_return = drift + vol * market.standard_normal(n_days)

    params = _rng("symbol_params").random((count, 6))
    beta = 0.4 + 1.4 * params[:, 0]
    idio_vol = 0.008 + 0.012 * params[:, 1]
    alpha = (params[:, 2] - 0.5) * 0.0004
    first_price = np.exp(np.log(15.0) + (np.log(400.0) - np.log(15.0)) * params[:, 3])
    base_volume = np.exp(12.5 + 2.5 * params[:, 4])

    idio = _rng("idiosyncratic").standard_normal((count, n_days))
    log_return = (
        alpha[:, None] + beta[:, None] * market_log_return[None, :] + idio_vol[:, None] * idio
    )
    log_return[:, 0] = 0.0  # the first close is the starting price
    close = np.round(first_price[:, None] * np.exp(np.cumsum(log_return, axis=1)), 4)

    previous_close = np.concatenate([first_price[:, None], close[:, :-1]], axis=1)
    gap = 0.3 * idio_vol[:, None] * _rng("open_gap").standard_normal((count, n_days))
    open_ = np.round(previous_close * np.exp(gap), 4)
    wick = 0.5 * idio_vol[:, None]
    high = np.round(
        np.maximum(open_, close)
        * np.exp(np.abs(wick * _rng("high_wick").standard_normal((count, n_days)))),
        4,
    )
    low = np.round(
        np.minimum(open_, close)
        * np.exp(-np.abs(wick * _rng("low_wick").standard_normal((count, n_days)))),
        4,
    )
    # Volume rises with the size of the move, as in real markets.
    abs_move = np.abs(log_return - alpha[:, None])
    volume_noise = 0.35 * _rng("volume").standard_normal((count, n_days))
    volume = np.maximum(
        np.round(base_volume[:, None] * np.exp(volume_noise + 12.0 * abs_move)), 100
    ).astype(np.int64)

    table = {
        "symbol": np.repeat(symbols(count), n_days),
        "date": np.tile(_epoch_days(days), count),
        "open": open_.ravel(),
        "high": high.ravel(),
        "low": low.ravel(),
        "close": close.ravel(),
        "volume": volume.ravel(),
    }
    return table, close


def generate_fundamentals(count: int, days: np.ndarray, close: np.ndarray) -> Columns:
    """Quarterly EPS reports: 24 quarters per symbol, the first one ending 2018-12-31."""
    quarter_starts = np.arange(
        np.datetime64("2019-01"), np.datetime64("2024-11"), 3, dtype="datetime64[M]"
    )
    quarter_end = quarter_starts.astype("datetime64[D]") - 1
    n_quarters = quarter_end.size

    params = _rng("symbol_params").random((count, 6))
    pe_target = 10.0 + 25.0 * params[:, 5]
    sector = np.array(SECTORS, dtype=object)[np.arange(count) % len(SECTORS)]

    # Earnings follow the price (closing price of the quarter's last business day, or the
    # first close for quarters before the price history), with noise: P/E stays in a band.
    day_index = np.searchsorted(days, quarter_end, side="right") - 1
    reference_price = np.where(
        day_index[None, :] >= 0, close[:, np.maximum(day_index, 0)], close[:, :1]
    )
    eps_noise = np.exp(0.12 * _rng("eps").standard_normal((count, n_quarters)))
    eps = np.round(reference_price / (4.0 * pe_target[:, None]) * eps_noise, 4)
    revenue_per_eps = 8.0 + 12.0 * params[:, 0]
    revenue = np.round(eps * revenue_per_eps[:, None] * 1.0e8, 0)

    lag = _rng("report_lag").integers(20, 51, size=(count, n_quarters))
    report_date = quarter_end[None, :] + lag.astype("timedelta64[D]")

    return {
        "symbol": np.repeat(symbols(count), n_quarters),
        "sector": np.repeat(sector, n_quarters),
        "fiscal_quarter_end": np.tile(_epoch_days(quarter_end), count),
        "report_date": _epoch_days(report_date.ravel()),
        "eps": eps.ravel(),
        "revenue": revenue.ravel(),
    }


def generate_macro_series(days: np.ndarray) -> Columns:
    """Daily 10y and 2y treasury yields and the fed funds rate, in percent."""
    rng = _rng("macro")
    ten_year = _interpolate(
        days,
        [
            ("2020-01-01", 1.90),
            ("2020-03-09", 0.55),
            ("2020-08-04", 0.52),
            ("2021-03-31", 1.74),
            ("2021-12-31", 1.52),
            ("2022-06-14", 3.48),
            ("2022-10-24", 4.25),
            ("2023-04-05", 3.30),
            ("2023-10-19", 4.99),
            ("2023-12-27", 3.79),
            ("2024-04-25", 4.70),
            ("2024-09-16", 3.62),
            ("2024-12-31", 4.57),
        ],
    )
    two_year = _interpolate(
        days,
        [
            ("2020-01-01", 1.58),
            ("2020-03-23", 0.30),
            ("2020-08-01", 0.12),
            ("2021-09-01", 0.20),
            ("2022-01-01", 0.73),
            ("2022-06-14", 3.43),
            ("2022-11-07", 4.72),
            ("2023-03-08", 5.07),
            ("2023-05-04", 3.80),
            ("2023-10-19", 5.20),
            ("2024-04-30", 5.04),
            ("2024-09-24", 3.55),
            ("2024-12-31", 4.25),
        ],
    )
    common = _smooth_noise(rng, days.size, 15)
    ten_year = ten_year + 0.10 * common + 0.03 * _smooth_noise(rng, days.size, 2)
    two_year = two_year + 0.08 * common + 0.03 * _smooth_noise(rng, days.size, 2)

    # The policy rate moves in steps on meeting days.
    meetings = np.array(
        ["2020-03-03", "2020-03-16", "2022-03-17", "2022-05-05", "2022-06-16", "2022-07-28"]
        + ["2022-09-22", "2022-11-03", "2022-12-15", "2023-02-02", "2023-03-23", "2023-05-04"]
        + ["2023-07-27", "2024-09-19", "2024-11-08", "2024-12-19"],
        dtype="datetime64[D]",
    )
    levels = np.array(
        [1.55, 1.08, 0.08, 0.33, 0.83, 1.58, 2.33, 3.08, 3.83, 4.33, 4.58, 4.83, 5.08, 5.33]
        + [4.83, 4.58, 4.33]
    )
    fed_funds = levels[np.searchsorted(meetings, days, side="right")]

    return {
        "date": _epoch_days(days),
        "treasury_10y": np.round(np.maximum(ten_year, 0.05), 3),
        "treasury_2y": np.round(np.maximum(two_year, 0.05), 3),
        "fed_funds_rate": fed_funds,
    }


def _existing_tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_catalog = current_database() AND table_schema = ?",
        [RAW_SCHEMA],
    ).fetchall()
    return {name for (name,) in rows}


_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "daily_prices": [
        ("symbol", "VARCHAR"),
        ("date", "DATE"),
        ("open", "DOUBLE"),
        ("high", "DOUBLE"),
        ("low", "DOUBLE"),
        ("close", "DOUBLE"),
        ("volume", "BIGINT"),
    ],
    "fundamentals": [
        ("symbol", "VARCHAR"),
        ("sector", "VARCHAR"),
        ("fiscal_quarter_end", "DATE"),
        ("report_date", "DATE"),
        ("eps", "DOUBLE"),
        ("revenue", "DOUBLE"),
    ],
    "macro_series": [
        ("date", "DATE"),
        ("treasury_10y", "DOUBLE"),
        ("treasury_2y", "DOUBLE"),
        ("fed_funds_rate", "DOUBLE"),
    ],
}


def ensure_raw_data(conn: duckdb.DuckDBPyConnection) -> None:
    """Create and fill ``raw.daily_prices``, ``raw.fundamentals`` and ``raw.macro_series``.

    Does nothing when all three tables already exist; creates only the missing ones otherwise.
    The symbol count comes from ``FEATURESTORE_EXAMPLE_SYMBOLS`` (default 500).

    Example:
        >>> conn = duckdb.connect()
        >>> ensure_raw_data(conn)
        >>> conn.sql("SELECT count(DISTINCT symbol) FROM raw.daily_prices").fetchone()
        (500,)
    """
    missing = [name for name in RAW_TABLES if name not in _existing_tables(conn)]
    if not missing:
        return
    count = symbol_count()
    days = business_days()
    prices, close = generate_daily_prices(count, days)
    tables = {
        "daily_prices": prices,
        "fundamentals": generate_fundamentals(count, days, close),
        "macro_series": generate_macro_series(days),
    }
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for name in missing:
        view = f"__featurestore_example_{name}"
        conn.register(view, tables[name])
        try:
            columns = ", ".join(
                f"(DATE '1970-01-01' + {column}) AS {column}"
                if sql_type == "DATE"
                else f"CAST({column} AS {sql_type}) AS {column}"
                for column, sql_type in _COLUMNS[name]
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{name} AS SELECT {columns} FROM {view}"
            )
        finally:
            conn.unregister(view)
