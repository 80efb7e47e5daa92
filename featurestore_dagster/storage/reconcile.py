"""Materialization records rebuilt from the lake: the lake's commits are the truth.

A run killed after a publish commits but before its records are written, or a registry lost
mid-run, leaves published tables without records. Each commit of the store carries what it
published (``storage.snapshots``), so the missing rows are written from it: by
``featurestore doctor`` and at the start of the next ``featurestore materialize``.
"""

from __future__ import annotations

from sqlalchemy import select

from featurestore_dagster.registry.models import MaterializationRecord
from featurestore_dagster.storage.snapshots import Publish

RECONCILED = "record written from the lake snapshot (the build's own record was lost)"


def missing_records(registry, commits: list[Publish]) -> list[dict]:
    """Rows for the commits whose snapshot no materialization record names."""
    table = MaterializationRecord.__table__
    with registry.transaction() as conn:
        known = {
            row[0]
            for row in conn.execute(
                select(table.c.snapshot_id).where(table.c.snapshot_id.is_not(None))
            )
        }
    rows = []
    for commit in commits:
        if commit.snapshot_id in known:
            continue
        rows.append(
            {
                "feature_name": commit.feature_name,
                "version": commit.version or "unknown",
                "code_version": commit.code_version,
                "data_fingerprint": commit.data_fingerprint,
                "run_id": commit.run_id,
                "status": commit.status,
                "rows": commit.rows,
                "snapshot_id": commit.snapshot_id,
                "error": RECONCILED,
                "created_at": commit.committed_at,
            }
        )
    return rows
