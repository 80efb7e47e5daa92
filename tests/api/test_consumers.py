"""``POST /training-sets`` and ``POST /online-features`` against a real server over a
published project (a real lake, built by a real ``featurestore materialize``): JSON and Arrow
answers equal what ``FeatureStore`` computes in this process."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pyarrow as pa
import pytest

from tests.api.conftest import FEATURESTORE, make_project, server_env, serving
from tests.conftest import DefinitionsFolder
from tests.consumers.conftest import payloads

pytest.importorskip("featurestore_dagster.consumers.api")

START = dt.date(2024, 1, 1)
ARROW = "application/vnd.apache.arrow.stream"
SPINE = [
    {"symbol": "AAA", "date": "2024-01-05", "label": 0.5},
    {"symbol": "BBB", "date": "2024-01-04", "label": -0.25},
    {"symbol": "ZZZ", "date": "2024-01-10", "label": 0.3},
    {"symbol": "AAA", "date": "2023-12-25", "label": -1.0},
    {"symbol": "BBB", "date": "2024-01-20", "label": 0.7},
]


def load_raw(env: dict[str, str], days: int = 30) -> None:
    from tests.conftest import open_test_lake

    prices = pa.Table.from_pylist(
        [
            {"symbol": symbol, "date": START + dt.timedelta(days=day), "close": base + day}
            for day in range(days)
            for symbol, base in (("AAA", 100.0), ("BBB", 200.0))
            if symbol == "AAA" or day % 2 == 0
        ]
    )
    rates = pa.Table.from_pylist(
        [{"date": START + dt.timedelta(days=d), "value": 4.0 + d / 100} for d in (0, 7, 14, 21)]
    )
    conn = open_test_lake(env)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        conn.register("prices_rows", prices)
        conn.register("rates_rows", rates)
        conn.execute("CREATE OR REPLACE TABLE raw.prices AS SELECT * FROM prices_rows")
        conn.execute("CREATE OR REPLACE TABLE raw.rates AS SELECT * FROM rates_rows")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("consumers"))
    folder = DefinitionsFolder(root)
    for payload in payloads(rate_ttl=None):
        folder.write(payload)
    env = server_env(
        FEATURESTORE_DEFINITIONS=str(root / "feature_definitions"),
        FEATURESTORE_REGISTRY_URL=f"sqlite:///{root / 'registry.db'}",
        FEATURESTORE_LAKE_CATALOG=f"sqlite:{root / 'lake.sqlite'}",
        FEATURESTORE_LAKE_DATA=str(root / "lake"),
    )
    load_raw(env)
    for command in (["apply"], ["materialize"]):
        result = subprocess.run(
            [FEATURESTORE, *command], cwd=root, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
    with serving(root, env=env) as server:
        server.env = env
        yield server


def local_store(server):
    from featurestore_dagster.store import FeatureStore

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in server.env.items() if k.startswith("FEATURESTORE_")})
    try:
        return FeatureStore()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def spine_arrow() -> pa.Table:
    return pa.table(
        {
            "symbol": [r["symbol"] for r in SPINE],
            "date": [dt.date.fromisoformat(r["date"]) for r in SPINE],
            "label": [r["label"] for r in SPINE],
        }
    )


def plain(rows: list[dict]) -> list[dict]:
    return json.loads(json.dumps(rows, default=lambda v: v.isoformat()))


def test_training_set_as_json_equals_the_python_api(published):
    body = {"spine": SPINE, "features": ["close_price", "rate"], "timestamp_column": "date"}
    with published.client() as http:
        response = http.post("/training-sets", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["columns"] == ["symbol", "date", "label", "close_price", "rate"]
    assert data["num_rows"] == len(SPINE)
    assert data["rows"][0] == {
        "symbol": "AAA",
        "date": "2024-01-05",
        "label": 0.5,
        "close_price": 104.0,
        "rate": 4.0,
    }
    assert data["rows"][2]["close_price"] is None  # an entity the feature never saw
    assert data["rows"][3]["close_price"] is None  # before every value
    assert json.loads(response.headers["X-Featurestore-Manifest"]) == data["manifest"]
    expected = local_store(published).get_training_set(
        spine_arrow(), features=["close_price", "rate"], timestamp_column="date"
    )
    assert data["rows"] == plain(expected.to_arrow().to_pylist())
    stored = local_store(published).get_training_set_manifest(data["training_set_id"])
    assert stored["training_set_id"] == data["training_set_id"]


def test_training_set_as_arrow_with_its_manifest_and_a_rebuild(published):
    body = {"spine": SPINE, "features": ["close_price"]}
    with published.client() as http:
        response = http.post("/training-sets", json=body, headers={"Accept": ARROW})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == ARROW
        table = pa.ipc.open_stream(response.content).read_all()
        manifest = json.loads(table.schema.metadata[b"featurestore.manifest"])
        assert manifest["training_set_id"] == response.headers["X-Featurestore-Training-Set-Id"]
        assert table.column("date").type == pa.date32()
        assert table.column("close_price").to_pylist() == [104.0, 202.0, None, None, 218.0]
        again = http.post("/training-sets", json={"spine": SPINE, "manifest": manifest})
        assert again.status_code == 200, again.text
        assert [r["close_price"] for r in again.json()["rows"]] == [104.0, 202.0, None, None, 218.0]


def test_training_set_records_usage_for_a_model(published):
    body = {
        "spine": SPINE,
        "features": ["close_price", "rate"],
        "model": "ranker",
        "model_version": "1.0.0",
        "environment": "staging",
        "label_column": "label",
    }
    with published.client() as http:
        before = http.get("/features/rate/statistics").json()["total_usage"]
        response = http.post("/training-sets", json=body)
        assert response.status_code == 200, response.text
        history = http.get("/features/rate/usage", params={"limit": 1}).json()["records"]
        assert http.get("/features/rate/statistics").json()["total_usage"] == before + 1
    assert history[0]["execution_id"] == response.json()["training_set_id"]
    assert history[0]["used_by_model"] == "ranker"


@pytest.mark.parametrize(
    "body,code,text",
    [
        ({"spine": SPINE, "features": ["next_close"]}, 422, "next_close"),
        ({"spine": SPINE, "features": ["nope"]}, 404, "nope"),
        ({"spine": SPINE, "features": ["close_price@7.0.0"]}, 409, "7.0.0"),
        ({"spine": [{"date": "2024-01-05"}], "features": ["close_price"]}, 422, "symbol"),
        (
            {
                "spine": [{"symbol": "AAA", "date": "yesterday"}],
                "features": ["close_price"],
                "timestamp_column": "date",
            },
            422,
            "date",
        ),
        (
            {
                "spine": [
                    {"symbol": "AAA", "date": "2024-01-05"},
                    {"symbol": 3, "date": "2024-01-05"},
                ],
                "features": ["close_price"],
            },
            422,
            "spine",
        ),
        ({"spine": [], "features": ["close_price"]}, 422, "spine"),
        ({"spine": SPINE, "features": ["close_price"], "model": "ranker"}, 422, "model"),
        ({"spine": "SELECT * FROM raw.prices", "features": ["close_price"]}, 422, "spine"),
        ({"spine": SPINE, "features": ["close_price"], "ttl": "forever"}, 422, "ttl"),
    ],
)
def test_bad_training_set_requests_are_4xx(published, body, code, text):
    with published.client() as http:
        response = http.post("/training-sets", json=body)
    assert response.status_code == code, response.text
    assert text in json.dumps(response.json()["detail"])


def test_lookahead_is_allowed_when_asked(published):
    body = {"spine": SPINE, "features": ["next_close"], "allow_lookahead": True}
    with published.client() as http:
        response = http.post("/training-sets", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["rows"][0]["next_close"] == 105.0


def test_online_features_json_and_arrow(published):
    body = {
        "entity_rows": [{"symbol": "AAA"}, {"symbol": "ZZZ"}],
        "features": ["close_price", "rate"],
    }
    with published.client() as http:
        response = http.post("/online-features", json=body)
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        arrow = http.post("/online-features", json=body, headers={"Accept": ARROW})
    assert rows[0]["close_price"] == 129.0 and rows[0]["close_price__timestamp"] == "2024-01-30"
    assert rows[1]["close_price"] is None and rows[0]["rate"] == rows[1]["rate"] == 4.21
    expected = local_store(published).get_online_features(
        [{"symbol": "AAA"}, {"symbol": "ZZZ"}], ["close_price", "rate"]
    )
    assert rows == plain(expected.to_dict())
    assert pa.ipc.open_stream(arrow.content).read_all().to_pylist() == expected.to_dict()
    with published.client() as http:
        assert http.post("/online-features", json={**body, "features": ["nope"]}).status_code == 404
        missing = http.post(
            "/online-features", json={"entity_rows": [{"ticker": "A"}], "features": ["close_price"]}
        )
        assert missing.status_code == 422 and "symbol" in missing.text
        versioned = http.post("/online-features", json={**body, "features": ["close_price@1"]})
        assert versioned.status_code == 422


def test_online_features_see_a_publish_made_while_serving(published):
    """The server's lake reader is opened once per worker and kept: a ``featurestore
    materialize`` that publishes a newer day is seen by the next request. (Last in the module:
    it changes the data the tests above read.)"""
    body = {"entity_rows": [{"symbol": "AAA"}], "features": ["close_price"]}
    with published.client() as http:
        first = http.post("/online-features", json=body).json()["rows"][0]
        assert (first["close_price"], first["close_price__timestamp"]) == (129.0, "2024-01-30")
        load_raw(published.env, days=32)
        result = subprocess.run(
            [FEATURESTORE, "materialize"],
            cwd=published.project,
            env=published.env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        again = http.post("/online-features", json=body).json()["rows"][0]
    assert (again["close_price"], again["close_price__timestamp"]) == (131.0, "2024-02-01")
