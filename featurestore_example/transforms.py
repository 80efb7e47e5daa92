"""Python transformations of the example feature set.

The engine calls each one as ``fn(conn, inputs, **parameters)``: ``conn`` is the DuckDB
connection, ``inputs`` maps every upstream feature name (and every source name, such as
``"raw.daily_prices"``) to a DuckDB relation of that table, and ``parameters`` are the
definition's ``transformation.parameters``. Each returns a pyarrow Table with exactly the entity
columns, ``date`` (DATE) and one DOUBLE value column named after the feature.

Both indicators are recursive filters; they run per symbol through pandas' grouped ``ewm``
(compiled, no Python loop over rows). Warm-up rows are dropped, not kept as NULL.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa


def _closes(inputs: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """The close table sorted by symbol and date, and an integer group id per row (grouping
    on integers is several times faster than on the symbol strings)."""
    relation: duckdb.DuckDBPyRelation = inputs["stock_daily_close"]
    frame = relation.project("symbol, date, stock_daily_close").order("symbol, date").df()
    frame = frame.reset_index(drop=True)
    symbol = frame["symbol"].to_numpy()
    new_symbol = np.ones(len(frame), dtype=bool)
    new_symbol[1:] = symbol[1:] != symbol[:-1]
    return frame, np.cumsum(new_symbol)


def _result(frame: pd.DataFrame, keep: np.ndarray, name: str, values: np.ndarray) -> pa.Table:
    dates = pd.to_datetime(frame["date"]).to_numpy()[keep].astype("datetime64[D]")
    return pa.table(
        {
            "symbol": pa.array(frame["symbol"].to_numpy()[keep], pa.string()),
            "date": pa.array(dates, pa.date32()),
            name: pa.array(np.asarray(values, dtype=np.float64)[keep], pa.float64()),
        }
    )


def stock_rsi(
    conn: duckdb.DuckDBPyConnection, inputs: dict[str, Any], period: int = 14
) -> pa.Table:
    """Relative Strength Index with Wilder smoothing, exactly as TA-Lib's ``RSI``.

    The first average gain (loss) is the simple mean of the first ``period`` close-to-close
    changes; after that ``avg = (previous * (period - 1) + current) / period``, which is an
    exponential average with ``alpha = 1 / period`` seeded by that mean. The first value is at
    the ``period``-th change (row index ``period``, the 15th close for ``period=14``); earlier
    rows are dropped. ``RSI = 100 * avg_gain / (avg_gain + avg_loss)`` (0 when both are 0,
    as TA-Lib does).
    """
    period = int(period)
    frame, group = _closes(inputs)
    close = frame["stock_daily_close"]
    position = close.groupby(group).cumcount().to_numpy()
    change = close.groupby(group).diff()
    gain = change.clip(lower=0.0)
    loss = (-change).clip(lower=0.0)

    keep = position >= period
    averages = {}
    for side, moves in (("gain", gain), ("loss", loss)):
        # Row ``period`` carries the seed (mean of changes 1..period), later rows the change.
        seed = moves.fillna(0.0).groupby(group).cumsum() / period
        smoothed = (
            moves.where(position > period, seed)[keep]
            .groupby(group[keep])
            .ewm(alpha=1.0 / period, adjust=False)
            .mean()
            .reset_index(level=0, drop=True)
        )
        averages[side] = smoothed.reindex(frame.index).to_numpy()

    total = averages["gain"] + averages["loss"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100.0 * averages["gain"] / total, 0.0)
    return _result(frame, keep, "stock_rsi_14d", rsi)


def stock_macd(
    conn: duckdb.DuckDBPyConnection,
    inputs: dict[str, Any],
    fast_period: int = 12,
    slow_period: int = 26,
) -> pa.Table:
    """MACD line: ``EMA(fast) - EMA(slow)`` of the close, per symbol.

    The EMAs are pandas' ``ewm(span=n, adjust=False)``: ``alpha = 2 / (n + 1)``, seeded with
    the first close (``ema_0 = close_0``), then ``ema_t = alpha * close_t + (1 - alpha) *
    ema_{t-1}``. This is *not* TA-Lib's seeding (TA-Lib starts each EMA from a simple mean),
    so values differ from TA-Lib early on and converge later. Rows before the slow EMA has
    seen ``slow_period`` closes (row index < ``slow_period - 1``) are dropped.
    """
    fast_period, slow_period = int(fast_period), int(slow_period)
    frame, group = _closes(inputs)
    close = frame["stock_daily_close"]
    position = close.groupby(group).cumcount().to_numpy()
    emas = []
    for span in (fast_period, slow_period):
        ema = (
            close.groupby(group).ewm(span=span, adjust=False).mean().reset_index(level=0, drop=True)
        )
        emas.append(ema.reindex(frame.index).to_numpy())
    keep = position >= slow_period - 1
    return _result(frame, keep, "stock_macd", emas[0] - emas[1])
