"""A Dagster instance on PostgreSQL (deploy/dagster.yaml): a real run recorded there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import dagster as dg
import sqlalchemy

from tests.build.test_publish import child, seed_prices
from tests.conftest import REPO_ROOT, base_definition, temporary_postgres_database


def test_materialize_records_its_run_in_a_postgres_instance(
    definitions_folder, store_env, tmp_path, monkeypatch
):
    seed_prices(store_env)
    definitions_folder.write(base_definition())
    definitions_folder.write(child())
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with temporary_postgres_database("fs_dagster") as url:
        plain_url = url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
        env = {**store_env, "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": plain_url}
        result = subprocess.run(
            [sys.executable, "-m", "featurestore_dagster.cli", "materialize", "--json"],
            env={**_base_env(), **env},
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert {b["status"] for b in json.loads(result.stdout)} == {"published"}

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["featurestore/command"] == "materialize"
            event = instance.get_latest_materialization_event(
                dg.AssetKey(["features", "double_price"])
            )
            assert event.run_id == run.run_id
            assert event.asset_materialization.metadata["dagster/row_count"].value == 6
        # The events are rows of the PostgreSQL database itself.
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    sqlalchemy.text(
                        "SELECT dagster_event_type, count(*) FROM event_logs"
                        " WHERE run_id = :run GROUP BY 1"
                    ),
                    {"run": run.run_id},
                ).all()
            )
        engine.dispose()
        assert kinds["ASSET_MATERIALIZATION"] == 2
        assert kinds["ASSET_CHECK_EVALUATION"] == 6  # schema, unique_key, range for each


def _base_env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "FEATURESTORE_"))}
