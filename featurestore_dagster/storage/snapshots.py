"""What the lake's snapshots say: one commit per publish, carrying what was published.

Each publish (and rejection, and restore) commits with a JSON ``commit_extra_info`` holding the
feature, its version label, data fingerprint, rows and Dagster run id. That makes the lake the
truth about what was published: ``read_feature`` finds the last publish of a version in it,
``rollback`` finds a retained publish to restore from, and ``doctor`` rebuilds materialization
records the registry lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb

from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import quote_table
from featurestore_dagster.storage.lake import CATALOG, LATEST_SCHEMA, in_transaction, table_exists


@dataclass(frozen=True)
class Publish:
    """One commit of the store: a publish, a rejection or a restore of one feature."""

    snapshot_id: int
    committed_at: datetime
    feature_name: str
    status: str  # published | rejected | restored
    version: str | None
    data_fingerprint: str | None
    rows: int | None
    run_id: str | None
    code_version: str | None
    table: str | None

    @property
    def publishes_data(self) -> bool:
        return self.status in ("published", "restored")

    def major(self) -> int | None:
        label = self.code_version or self.version or ""
        head = label.split(".", 1)[0]
        return int(head) if head.isdigit() else None


def store_commits(conn: duckdb.DuckDBPyConnection, feature: str | None = None) -> list[Publish]:
    """Every commit the store made (oldest first), optionally of one feature."""
    rows = conn.execute(
        f"SELECT snapshot_id, snapshot_time, commit_extra_info FROM {CATALOG}.snapshots()"
        " WHERE author = 'featurestore' AND commit_extra_info IS NOT NULL"
        " ORDER BY snapshot_id"
    ).fetchall()
    commits = []
    for snapshot_id, committed_at, info in rows:
        try:
            facts = json.loads(info)
        except ValueError:
            continue
        if not isinstance(facts, dict) or "feature_name" not in facts:
            continue
        if feature is not None and facts["feature_name"] != feature:
            continue
        commits.append(
            Publish(
                snapshot_id=int(snapshot_id),
                committed_at=committed_at,
                feature_name=facts["feature_name"],
                status=str(facts.get("status")),
                version=facts.get("version"),
                data_fingerprint=facts.get("data_fingerprint"),
                rows=facts.get("rows"),
                run_id=facts.get("run_id"),
                code_version=facts.get("code_version"),
                table=facts.get("table"),
            )
        )
    return commits


def retained_snapshots(conn: duckdb.DuckDBPyConnection) -> set[int]:
    rows = conn.execute(f"SELECT snapshot_id FROM {CATALOG}.snapshots()").fetchall()
    return {int(r[0]) for r in rows}


def last_publish(
    commits: list[Publish],
    *,
    version: str | None = None,
    fingerprint: str | None = None,
) -> Publish | None:
    """The newest data publish matching a version label ("1.2.0"), a major line ("1") or a
    data fingerprint."""
    for commit in reversed(commits):
        if not commit.publishes_data:
            continue
        if fingerprint is not None and commit.data_fingerprint == fingerprint:
            return commit
        if version is None:
            continue
        if "." not in version:
            if version.isdigit() and commit.major() == int(version):
                return commit
        elif version in (commit.version, commit.code_version, _release(commit.version)):
            return commit
    return None


def _release(label: str | None) -> str | None:
    return label.split("+", 1)[0] if label else None


def restore_snapshot(
    conn: duckdb.DuckDBPyConnection,
    definition: FeatureDefinition,
    snapshot_id: int,
    info: dict,
) -> int:
    """Replace the live table (and its latest values) by its content at ``snapshot_id``, in one
    lake transaction; returns the new snapshot id.

    Raises:
        LookupError: the table is not readable at that snapshot any more (expired).
    """
    from featurestore_dagster.build.latest import latest_values_sql
    from featurestore_dagster.storage.lake import publish_snapshot

    table = definition.table_name
    if not table_exists(conn, table, snapshot_id):
        raise LookupError(f"{table} is not retained at snapshot {snapshot_id}")
    live = quote_table(table)
    latest = quote_table(f"{LATEST_SCHEMA}.{definition.feature_name}")
    old = f"(SELECT * FROM {live} AT (VERSION => {int(snapshot_id)}))"
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS {CATALOG}."{LATEST_SCHEMA}"')
    import uuid

    token = uuid.uuid4().hex
    before = publish_snapshot(conn, None)

    def restore() -> None:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE __featurestore_restore AS SELECT * FROM {old}")
        conn.execute(f"DROP TABLE IF EXISTS {live}")
        conn.execute(f"CREATE TABLE {live} AS SELECT * FROM __featurestore_restore")
        conn.execute(
            f"CREATE OR REPLACE TABLE {latest} AS"
            f" {latest_values_sql(definition, '__featurestore_restore')}"
        )
        facts = {**info, "status": "restored", "token": token, "restored_from": snapshot_id}
        conn.execute(
            f"CALL {CATALOG}.set_commit_message('featurestore', ?, extra_info => ?)",
            [f"restored {definition.feature_name} from snapshot {snapshot_id}", json.dumps(facts)],
        )

    try:
        in_transaction(conn, restore)
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.main.__featurestore_restore")
    return publish_snapshot(conn, token, after=before)
