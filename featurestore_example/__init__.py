"""The bundled example: deterministic raw market data and the python transformations used by
the definitions under ``feature_definitions/``.

``featurestore_example.data.ensure_raw_data`` is the bootstrap hook that loads the raw tables
(``raw.daily_prices``, ``raw.fundamentals``, ``raw.macro_series``) into DuckDB;
``featurestore_example.transforms`` holds the python transformations (RSI, MACD).

Nothing is imported here, so that locating a transformation (the loader does it without
importing) stays free of numpy and pandas.
"""
