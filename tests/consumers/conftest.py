"""A small published project for the consumer tests: prices per symbol, a global rate series
and a feature that looks ahead, built through the real CLI into a real lake and registry.

Built once per module (two publishes: version 1.0.0, then 1.1.0 with other values), because a
Dagster run costs seconds; tests only read it or add registry rows they count themselves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import DefinitionsFolder, base_definition, open_test_lake

runner = CliRunner()

SYMBOLS = ("AAA", "BBB", "CCC")
START = dt.date(2024, 1, 1)


def price_rows() -> list[tuple[str, dt.date, float]]:
    """Irregular calendars: AAA trades every day, BBB every other day, CCC from day 10."""
    rows = []
    for day in range(30):
        date = START + dt.timedelta(days=day)
        rows.append(("AAA", date, 100.0 + day))
        if day % 2 == 0:
            rows.append(("BBB", date, 200.0 + day))
        if day >= 10:
            rows.append(("CCC", date, 300.0 + day))
    return rows


RATE_DAYS = (0, 7, 14, 21, 28)


def payloads(
    scale: float = 1.0, version: str = "1.0.0", rate_ttl: str | None = "10d"
) -> list[dict]:
    """close_price (per symbol), rate (a global series, ``ttl: rate_ttl``) and next_close (a
    lookahead feature)."""
    factor = "" if scale == 1.0 else f" * {scale}"
    ttl = {} if rate_ttl is None else {"ttl": rate_ttl}
    return [
        base_definition(
            version=version,
            transformation={
                "code": f"SELECT symbol, date, close{factor} AS close_price FROM raw.prices"
            },
        ),
        base_definition(
            feature_name="rate",
            feature_type="macro_economic",
            entity_columns=[],
            sources=["raw.rates"],
            **ttl,
            transformation={"code": "SELECT date, value AS rate FROM raw.rates"},
            validation_rules=[],
        ),
        base_definition(
            feature_name="next_close",
            feature_type="derived",
            sources=[],
            upstream_features=["close_price"],
            transformation={
                "code": "SELECT symbol, date, LEAD(close_price) OVER (PARTITION BY symbol"
                " ORDER BY date) AS next_close FROM features.close_price"
            },
            validation_rules=[],
        ),
    ]


def load_raw(env: dict[str, str]) -> None:
    conn = open_test_lake(env)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        # One statement per table (each lake write is a snapshot; executemany makes one a row).
        prices = pa.Table.from_pylist(
            [{"symbol": s, "date": d, "close": c} for s, d, c in price_rows()]
        )
        rates = pa.Table.from_pylist(
            [{"date": START + dt.timedelta(days=d), "value": 4.0 + d / 100} for d in RATE_DAYS]
        )
        conn.register("prices_rows", prices)
        conn.register("rates_rows", rates)
        conn.execute("CREATE OR REPLACE TABLE raw.prices AS SELECT * FROM prices_rows")
        conn.execute("CREATE OR REPLACE TABLE raw.rates AS SELECT * FROM rates_rows")
    finally:
        conn.close()


def cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


class Project:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.folder = DefinitionsFolder(root)

    def publish(self, scale: float, version: str) -> None:
        for payload in payloads(scale, version):
            self.folder.write(payload)
        cli("apply")
        cli("materialize")

    def store(self):
        from featurestore_dagster.store import FeatureStore

        return FeatureStore()


def _env(root: Path, catalog: str) -> dict[str, str]:
    return {
        "FEATURESTORE_DEFINITIONS": str(root / "feature_definitions"),
        "FEATURESTORE_REGISTRY_URL": f"sqlite:///{root / 'registry.db'}",
        "FEATURESTORE_LAKE_CATALOG": catalog,
        "FEATURESTORE_LAKE_DATA": str(root / "lake"),
        "FEATURESTORE_BOOTSTRAP": "",
        "FEATURESTORE_USER": "tester",
    }


def spine_frame():
    """Label times before the first value, on value dates (ties), between them, after the last,
    for known symbols and one the features never saw; deliberately not sorted."""
    import pandas as pd

    rows = [
        ("AAA", "2024-01-05"),
        ("BBB", "2024-01-04"),  # BBB did not trade: the value of the 3rd
        ("BBB", "2024-01-05"),  # a BBB trading day: a tie
        ("CCC", "2024-01-03"),  # before CCC's first value
        ("ZZZ", "2024-01-10"),  # an unknown entity
        ("AAA", "2023-12-25"),  # before every value
        ("AAA", "2024-03-01"),  # after the last value (30 days old: rate expired)
        ("CCC", "2024-01-20"),
        ("AAA", "2024-01-05"),  # a repeated spine row stays repeated
    ]
    frame = pd.DataFrame(rows, columns=["symbol", "date"])
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    frame["label"] = [0.5, -0.25, 1.0, 0.0, 0.3, -1.0, 2.0, 0.7, 0.1]
    return frame


FEATURES = ["close_price", "rate"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The project after two publishes (1.0.0: close; 1.1.0: close * 10), SQLite catalog.

    ``project.first`` is a training set taken between the two publishes (its manifest stored),
    with ``project.first_table`` its Arrow table at the time.
    """
    root = tmp_path_factory.mktemp("consumers")
    env = _env(root, f"sqlite:{root / 'lake.sqlite'}")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.chdir(root)
        project = Project(root, env)
        load_raw(env)
        project.publish(1.0, "1.0.0")
        project.first = project.store().get_training_set(
            spine_frame(), features=FEATURES, timestamp_column="date"
        )
        project.first_table = project.first.to_arrow()
        project.publish(10.0, "1.1.0")
        yield project
