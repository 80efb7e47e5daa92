"""A build killed with SIGKILL at random points, on SQLite and PostgreSQL catalogs: after every
kill the lake opens, each feature (and its latest values) is absent (never published) or
exactly one complete version, no staging table is visible, and the next doctor and build
reconcile the records from the lake's snapshots."""

from __future__ import annotations

import json
import os
import random
import signal
import time

from sqlalchemy import create_engine, text

from tests.conftest import DefinitionsFolder, open_test_lake
from tests.storage.processes import (
    derived,
    digest,
    lake_tables,
    run,
    seed_prices,
    start,
    write_features,
)
from tests.storage.test_lake import cli

SYMBOLS, DAYS = 20, 250  # 5,000 rows per feature
TRIALS = {"sqlite": 10, "postgres": 4}


def observe(env, names) -> dict[str, tuple]:
    """(live digest, latest digest) of every feature; asserts no staging table is visible."""
    conn = open_test_lake(env, read_only=True)
    try:
        tables = lake_tables(conn)
        state = {n: (digest(conn, f"features.{n}"), digest(conn, f"_latest.{n}")) for n in names}
    finally:
        conn.close()
    assert not [t for s, t in tables if t.startswith("__") or "staging" in t], tables
    assert {s for s, _ in tables} <= {"raw", "features", "_latest", "_rejected"}, tables
    return state


def complete(env, cwd, names) -> dict[str, tuple]:
    code, stdout, stderr = run(env, cwd, "materialize", "--json")
    assert code == 0, stderr
    assert {r["feature_name"] for r in json.loads(stdout) if r["status"] == "published"} == set(
        names
    )
    return observe(env, names)


def wait_for_publishes(env, snapshot: int, process, deadline: float) -> None:
    """Wait until the build has committed the lake up to ``snapshot``."""
    conn = open_test_lake(env, read_only=True)
    try:
        while time.monotonic() < deadline and process.poll() is None:
            last = conn.execute("SELECT max(snapshot_id) FROM featurestore.snapshots()").fetchone()
            if last[0] >= snapshot:
                return
            time.sleep(0.02)
    finally:
        conn.close()


def last_snapshot(env) -> int:
    conn = open_test_lake(env, read_only=True)
    try:
        return conn.execute("SELECT max(snapshot_id) FROM featurestore.snapshots()").fetchone()[0]
    finally:
        conn.close()


def test_killed_builds_leave_every_table_old_or_new(lake_env, tmp_path):
    env = lake_env
    catalog = "sqlite" if env["FEATURESTORE_LAKE_CATALOG"].startswith("sqlite") else "postgres"
    folder = DefinitionsFolder(tmp_path)
    names = write_features(folder, 7)
    seed_prices(env, symbols=SYMBOLS, days=DAYS, scale=1.0)
    began = time.monotonic()
    complete(env, tmp_path, names)
    startup = 0.5 * (time.monotonic() - began)  # about when the first publish comes
    folder.write(derived("f_new", "value / 2"))  # never published before the kills
    names.append("f_new")

    rng = random.Random(20261201)
    trials = TRIALS[catalog]
    before = observe(env, names)
    history = []  # (state before, scale built, state after, published before the kill?, code)

    def kills() -> tuple[int, int]:
        """(builds killed, builds killed after at least one of their publishes committed)."""
        killed = [h for h in history if h[4] == -signal.SIGKILL]
        return len(killed), sum(h[3] for h in killed)

    # A build may finish before its kill point comes (a fast machine, a late poll): such a try
    # still has to leave complete versions, but it does not count; try again, at most 4x.
    attempt = 0
    while True:
        killed, mid_publish = kills()
        if killed >= trials and mid_publish >= trials // 2:
            break
        assert attempt < 4 * trials, [(h[3], h[4]) for h in history]
        scale = 2.0 if attempt % 2 == 0 else 1.0
        seed_prices(env, symbols=SYMBOLS, days=DAYS, scale=scale)
        baseline = last_snapshot(env)
        process = start(env, tmp_path, "materialize")
        # Kill points spread over the build: during start-up (a random delay), or a random
        # moment after the k-th publish of this build committed (never after the last one).
        at_startup = attempt % 3 == 0 and killed - mid_publish < trials - trials // 2
        if at_startup:
            time.sleep(rng.uniform(0.0, startup))
        else:
            publishes = rng.randrange(1, len(names) - 1)
            wait_for_publishes(env, baseline + publishes, process, time.monotonic() + 120)
            time.sleep(rng.uniform(0.0, 0.05))
        attempt += 1
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        state = observe(env, names)
        history.append((before, scale, state, last_snapshot(env) > baseline, process.returncode))
        doctor = cli(env, "doctor", "--json")
        assert doctor.exit_code == 0, doctor.output
        before = state

    # The complete versions each build could have published.
    versions = {}
    for scale in (2.0, 1.0):
        seed_prices(env, symbols=SYMBOLS, days=DAYS, scale=scale)
        versions[scale] = complete(env, tmp_path, names)
    for old, scale, state, *_ in history:
        for name in names:
            assert state[name] in (old[name], versions[scale][name]), (name, scale)
    # Every commit the lake holds has its materialization record.
    assert "agree" in cli(env, "doctor").stdout
    conn = open_test_lake(env, read_only=True)
    commits = {
        r[0]
        for r in conn.execute(
            "SELECT snapshot_id FROM featurestore.snapshots() WHERE author = 'featurestore'"
        ).fetchall()
    }
    conn.close()
    engine = create_engine(env["FEATURESTORE_REGISTRY_URL"])
    with engine.connect() as registry:
        recorded = {
            r[0]
            for r in registry.execute(
                text("SELECT snapshot_id FROM materializations WHERE snapshot_id IS NOT NULL")
            )
        }
    engine.dispose()
    assert commits <= recorded
