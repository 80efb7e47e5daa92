"""Several real ``featurestore materialize`` processes publish into one lake at once (a SQLite
catalog answers the losers "database is locked", which the commit retries; PostgreSQL), while a
reader process keeps reading: every publish lands as exactly one snapshot with its record, and
the reader only ever sees complete tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import DefinitionsFolder, base_definition, open_test_lake
from tests.storage.processes import run, seed_prices, start

WRITERS, PER_WRITER = 4, 3
SYMBOLS, DAYS = 20, 250


def feature(name: str, factor: int):
    return base_definition(
        feature_name=name,
        validation_rules=[],
        transformation={
            "transformation_type": "sql",
            "code": f"SELECT symbol, date, close * {factor} AS {name} FROM raw.prices",
        },
    )


def snapshot_ids(env) -> list[tuple[int, str | None]]:
    conn = open_test_lake(env, read_only=True)
    try:
        return conn.execute(
            "SELECT snapshot_id, author FROM featurestore.snapshots() ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()


def test_concurrent_writers_all_land_while_a_reader_reads(lake_env, tmp_path):
    env = lake_env
    folder = DefinitionsFolder(tmp_path)
    folder.write(base_definition(validation_rules=[]))
    groups = [[f"w{w}_{i}" for i in range(PER_WRITER)] for w in range(WRITERS)]
    for w, names in enumerate(groups):
        for i, name in enumerate(names):
            folder.write(feature(name, 10 * w + i + 2))
    seed_prices(env, symbols=SYMBOLS, days=DAYS)
    code, _, stderr = run(env, tmp_path, "materialize", "close_price")  # schemas exist now
    assert code == 0, stderr
    before = snapshot_ids(env)

    stop = tmp_path / "stop-reading"
    names = [n for group in groups for n in group]
    reader = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("reader_loop.py")),
            str(stop),
            ",".join(names),
            str(SYMBOLS * DAYS),
            str(SYMBOLS),
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writers = [start(env, tmp_path, "materialize", *group, "--json") for group in groups]
    results = [w.communicate(timeout=600) + (w.returncode,) for w in writers]
    stop.touch()
    seen, reader_err = reader.communicate(timeout=120)
    assert reader.returncode == 0, reader_err

    published = {}
    for stdout, stderr, code in results:
        assert code == 0, stderr
        for row in json.loads(stdout):
            published[row["feature_name"]] = row
    assert set(published) == set(names)
    assert all(r["status"] == "published" for r in published.values())

    after = snapshot_ids(env)
    new = [s for s in after if s not in before]
    assert len(new) == WRITERS * PER_WRITER  # one snapshot per publish, nothing else
    assert {s for s, _ in new} == {r["snapshot_id"] for r in published.values()}
    engine = create_engine(env["FEATURESTORE_REGISTRY_URL"])
    with engine.connect() as conn:
        records = conn.execute(
            text(
                "SELECT feature_name, snapshot_id FROM materializations"
                " WHERE status = 'published' AND feature_name != 'close_price'"
            )
        ).fetchall()
    engine.dispose()
    assert sorted(records) == sorted((n, r["snapshot_id"]) for n, r in published.items())
    conn = open_test_lake(env, read_only=True)
    try:
        for w, group in enumerate(groups):
            for i, name in enumerate(group):
                total = conn.execute(
                    f"SELECT count(*), sum({name}) FROM features.{name}"
                ).fetchone()
                expected = conn.execute(
                    f"SELECT count(*), sum(close * {10 * w + i + 2}) FROM raw.prices"
                ).fetchone()
                assert total == expected, name
    finally:
        conn.close()

    report = json.loads(seen)
    assert report["violations"] == []
    assert report["reads"] > 0
