"""The lake side of ``FeatureStore``: connections, reads (live, by version, by snapshot), data
rollback, retention and reconciling records from the lake's snapshots.

A mixin like ``UsageAPI``: its host provides ``settings``, ``graph`` and ``registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import duckdb

from featurestore_dagster.errors import LakeError, UnknownFeatureError
from featurestore_dagster.storage.lake import open_lake, table_exists
from featurestore_dagster.storage.snapshots import (
    last_publish,
    restore_snapshot,
    retained_snapshots,
    store_commits,
)

Output = Literal["pandas", "arrow", "polars", "duckdb"]


@dataclass(frozen=True)
class DataRestore:
    """What ``restore_feature_data`` did."""

    feature_name: str
    version: str
    restored: bool
    snapshot_id: int | None = None  # the new snapshot (the restore's own commit)
    from_snapshot: int | None = None
    rows: int | None = None
    message: str = ""


class LakeAPI:
    """Reading the lake and managing its snapshots (mixed into ``FeatureStore``)."""

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the lake attached as the default catalog ``featurestore``
        (``features.<name>``, ``raw.<table>``, ``_latest.<name>``) and the configured DuckDB
        files attached read-only. ``read_only=False`` to load raw tables or repair data.

        Example:
            >>> conn = store.connect()
            >>> conn.sql("SELECT * FROM features.stock_rsi_14d LIMIT 5").df()
        """
        return open_lake(self.settings, read_only=read_only)

    def read_feature(
        self,
        name: str,
        version: str | None = None,
        snapshot: int | None = None,
        output: Output = "pandas",
    ) -> Any:
        """The live table of feature ``name``, or its last retained publish of ``version``
        ("1.2.0", or a major line "1"), or its content at lake snapshot ``snapshot``.

        Returns a pandas DataFrame (``output="pandas"``), a pyarrow Table (``"arrow"``), a
        polars DataFrame (``"polars"``).

        Raises:
            UnknownFeatureError: no such feature.
            LakeError: never published, or the version/snapshot is no longer retained.
        """
        if output not in ("pandas", "arrow", "polars"):
            raise LakeError(f"output must be pandas, arrow or polars, not '{output}'")
        if version is not None and snapshot is not None:
            raise LakeError("read_feature takes a version or a snapshot, not both")
        table = self._feature_table(name)
        with _Reader(self) as conn:
            if version is not None:
                snapshot = self._publish_of(conn, name, str(version)).snapshot_id
            if snapshot is not None:
                snapshot = int(snapshot)
                if snapshot not in retained_snapshots(conn) or not table_exists(
                    conn, table, snapshot
                ):
                    raise LakeError(
                        f"feature '{name}' is not retained at lake snapshot {snapshot} (expired by"
                        " gc, or the feature did not exist then)"
                    )
                query = f"SELECT * FROM {table} AT (VERSION => {snapshot})"
            else:
                if not table_exists(conn, table):
                    raise LakeError(
                        f"feature '{name}' has no live table {table} yet; run `featurestore"
                        f" materialize {name}`"
                    )
                query = f"SELECT * FROM {table}"
            relation = conn.sql(query)
            if output == "arrow":
                return relation.to_arrow_table()
            if output == "polars":
                return relation.pl()
            return relation.df()

    def feature_snapshot(self, name: str, version: str | None = None) -> int | None:
        """The lake snapshot id of the last retained publish of ``version`` (default: the
        feature's latest publish, what the live table holds); None when never published."""
        self._feature_table(name)
        with _Reader(self) as conn:
            if version is not None:
                return self._publish_of(conn, name, str(version)).snapshot_id
            commits = [c for c in store_commits(conn, name) if c.publishes_data]
            return commits[-1].snapshot_id if commits else None

    def _feature_table(self, name: str) -> str:
        graph = self.graph
        if name in graph:
            return graph[name].table_name
        if self.registry.registered_state([name]).get(name) is None:
            raise UnknownFeatureError(name, graph.names)
        return f"features.{name}"

    def _publish_of(self, conn, name: str, version: str):
        # A registered version is found by its data fingerprint (a metadata-only version
        # shares its data with the version before it); any label also by name.
        fingerprint = self._version_fingerprint(name, version) if version.count(".") == 2 else None
        commit = last_publish(store_commits(conn, name), version=version, fingerprint=fingerprint)
        if commit is None:
            what = f"major version {version}" if "." not in version else f"version {version}"
            raise LakeError(
                f"feature '{name}': no retained publish of {what} in the lake (never built, or"
                " expired by gc); a rebuild is needed"
            )
        return commit

    # --- rollback, retention, reconciliation -----------------------------------------------

    def restore_feature_data(self, name: str, version: str, *, new_version: str) -> DataRestore:
        """Restore the live table of ``name`` from the last retained publish of ``version``'s
        data (one lake transaction, no rebuild) and record it as a materialization of
        ``new_version``; when nothing is retained, say that a rebuild is needed."""
        definition = self.graph[name]
        fingerprint = self._version_fingerprint(name, version)
        with _Writer(self) as conn:
            commits = store_commits(conn, name)
            commit = last_publish(commits, fingerprint=fingerprint) if fingerprint else None
            commit = commit or last_publish(commits, version=version)
            if commit is None or not table_exists(conn, definition.table_name, commit.snapshot_id):
                return DataRestore(
                    name,
                    new_version,
                    restored=False,
                    message=f"no retained publish of {name} {version}'s data: a rebuild is"
                    f" needed (featurestore materialize {name})",
                )
            info = {
                "feature_name": name,
                "version": new_version,
                "table": definition.table_name,
                "rows": commit.rows,
                "data_fingerprint": commit.data_fingerprint,
                "code_version": commit.code_version,
                "run_id": None,
            }
            snapshot = restore_snapshot(conn, definition, commit.snapshot_id, info)
        self.registry.record_materializations(
            [
                {
                    "feature_name": name,
                    "version": new_version,
                    "code_version": commit.code_version,
                    "data_fingerprint": commit.data_fingerprint,
                    "status": "restored",
                    "rows": commit.rows,
                    "snapshot_id": snapshot,
                    "error": f"data restored from lake snapshot {commit.snapshot_id} ({version})",
                }
            ]
        )
        return DataRestore(
            name,
            new_version,
            restored=True,
            snapshot_id=snapshot,
            from_snapshot=commit.snapshot_id,
            rows=commit.rows,
            message=f"data restored from lake snapshot {commit.snapshot_id} (no rebuild)",
        )

    def _version_fingerprint(self, name: str, version: str) -> str | None:
        from sqlalchemy import select

        from featurestore_dagster.registry.models import FeatureVersionRecord

        table = FeatureVersionRecord.__table__
        with self.registry.transaction() as conn:
            return conn.execute(
                select(table.c.data_fingerprint).where(
                    table.c.feature_name == name, table.c.version == version
                )
            ).scalar()

    def collect_garbage(self, older_than: timedelta = timedelta(days=30), dry_run: bool = False):
        """Expire lake snapshots older than ``older_than`` except the latest publish of every
        registered major version and every snapshot a training set references."""
        from sqlalchemy import select

        from featurestore_dagster.registry.models import FeatureVersionRecord
        from featurestore_dagster.registry.training_sets import protected_snapshot_ids
        from featurestore_dagster.storage.retention import collect_garbage

        table = FeatureVersionRecord.__table__
        with self.registry.transaction() as conn:
            rows = conn.execute(select(table.c.feature_name, table.c.major).distinct()).fetchall()
        majors: dict[str, set[int]] = {}
        for feature, major in rows:
            majors.setdefault(feature, set()).add(int(major))
        protected = protected_snapshot_ids(self.registry.engine)
        with _Writer(self) as conn:
            return collect_garbage(
                conn,
                older_than=older_than,
                registered_majors=majors,
                protected=protected,
                dry_run=dry_run,
            )

    def reconcile_materializations(self) -> list[dict]:
        """Write the materialization records the registry lacks for commits the lake holds
        (a killed run, a registry lost mid-run); returns the rows written."""
        from featurestore_dagster.storage.reconcile import missing_records

        with _Reader(self) as conn:
            commits = store_commits(conn)
        rows = missing_records(self.registry, commits)
        if rows:
            self.registry.record_materializations(rows)
        return rows


class _Reader:
    def __init__(self, host, read_only: bool = True):
        self.host = host
        self.read_only = read_only

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.conn = open_lake(self.host.settings, read_only=self.read_only)
        return self.conn

    def __exit__(self, *exc) -> None:
        self.conn.close()


class _Writer(_Reader):
    def __init__(self, host):
        super().__init__(host, read_only=False)
