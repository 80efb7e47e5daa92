"""``featurestore materialize --executor multiprocess``: build steps in parallel processes.

Dagster's multiprocess executor runs every step (one multi-asset of ``steps.py``) in a process
of its own, as many at once as asked, each rebuilding the job from a reconstructable function.
Independent steps then build side by side, each in its own lake transactions. What the command
needs from the processes comes back through one temporary folder:

- ``plan.pickle``: the settings, code versions and step size the parent resolved, so every
  process builds exactly the job the parent planned (the folder is named by an environment
  variable, which the step processes inherit);
- ``<step>.pickle``: the ``FeatureBuild`` list each step wrote when it finished, read back
  for the summary, the exit code and the features of steps that never ran.

The executor needs an instance that outlives a process: ``DAGSTER_HOME``'s when set, otherwise a
temporary one for the run.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from featurestore_dagster.config import Settings

RUN_DIR_ENV = "FEATURESTORE_RUN_DIR"
JOB_NAME = "featurestore_build"
PLAN_FILE = "plan.pickle"
REPORT_SUFFIX = ".builds.pickle"


@dataclass(frozen=True)
class RunPlan:
    """What every step process needs to rebuild the parent's job."""

    settings: Settings
    code_versions: dict[str, str]
    max_features_per_step: int
    # The run's asset keys: a job holds one partitioning (Dagster refuses a job over assets
    # partitioned differently), and a run's features are partitioned alike.
    keys: tuple[str, ...] = ()


def build_job():
    """The reconstructable job of a multiprocess run (called in the parent and in each step
    process): the build steps and source assets of the planned graph."""
    import dagster as dg

    from featurestore_dagster.definitions.graph import FeatureGraph
    from featurestore_dagster.orchestration.definitions import (
        RESOURCE_KEY,
        FeatureBuildResource,
        build_assets,
    )
    from featurestore_dagster.orchestration.translator import FeatureTranslator

    run_dir = Path(os.environ[RUN_DIR_ENV])
    plan: RunPlan = pickle.loads((run_dir / PLAN_FILE).read_bytes())
    graph = FeatureGraph.from_settings(plan.settings)
    translator = FeatureTranslator(code_versions=plan.code_versions)
    assets = build_assets(graph, translator, max_features_per_step=plan.max_features_per_step)
    resource = FeatureBuildResource(plan.settings, report_dir=str(run_dir))
    selection = dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in plan.keys))
    job = dg.define_asset_job(JOB_NAME, selection=selection)
    definitions = dg.Definitions(
        assets=assets,
        jobs=[job],
        resources={RESOURCE_KEY: resource},
        executor=dg.multiprocess_executor,
    )
    return definitions.resolve_job_def(JOB_NAME)


def write_report(report_dir: str, step_name: str, builds: Sequence) -> None:
    """Called by a step when it finishes: its builds, for the parent to read."""
    target = Path(report_dir) / f"{step_name}{REPORT_SUFFIX}"
    partial = target.with_suffix(".tmp")
    partial.write_bytes(pickle.dumps(list(builds)))
    partial.replace(target)  # whole or absent, never half-written


def run_multiprocess(
    settings: Settings,
    keys: Sequence,
    *,
    code_versions: Mapping[str, str],
    max_features_per_step: int,
    max_processes: int | None,
    instance,
    run_config: dict,
    tags: dict[str, str],
    key_range=None,
):
    """Execute the selection with the multiprocess executor (``key_range``: the partitions of
    a partition run, one run whatever its length).

    Returns:
        ``(builds, result)``: every ``FeatureBuild`` the steps reported, and Dagster's result.
    """
    import dagster as dg

    with contextlib.ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="featurestore-")))
        names = tuple(key.to_user_string() for key in keys)
        plan = RunPlan(settings, dict(code_versions), max_features_per_step, names)
        (run_dir / PLAN_FILE).write_bytes(pickle.dumps(plan))
        stack.enter_context(_environment(RUN_DIR_ENV, str(run_dir)))
        if instance is None:
            instance = stack.enter_context(dg.DagsterInstance.local_temp())
        execution = {"config": {"max_concurrent": max_processes or 0}}
        result = dg.execute_job(
            dg.reconstructable(build_job),
            instance=instance,
            asset_selection=list(keys),
            run_config={**run_config, "execution": execution},
            tags={**tags, **partition_tags(key_range)},
            raise_on_error=False,
        )
        builds = []
        for report in sorted(run_dir.glob(f"*{REPORT_SUFFIX}")):
            builds.extend(pickle.loads(report.read_bytes()))
        return builds, result


def partition_tags(key_range) -> dict[str, str]:
    """The run tags of a partition key range: one key, or a range run as one run (the
    single-run backfill policy of partitioned build steps)."""
    if key_range is None:
        return {}
    if key_range.start == key_range.end:
        return {"dagster/partition": key_range.start}
    return {
        "dagster/asset_partition_range_start": key_range.start,
        "dagster/asset_partition_range_end": key_range.end,
    }


@contextlib.contextmanager
def _environment(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
