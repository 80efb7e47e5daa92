"""Running builds through Dagster from the command line (and reporting them)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from xml.etree import ElementTree

from featurestore_dagster.build.publish import FeatureBuild
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureStatus
from featurestore_dagster.errors import ConfigError, MaterializationError, UnknownFeatureError

EXECUTORS = ("in_process", "multiprocess")


def select_features(graph: FeatureGraph, names: Iterable[str] | None) -> list[str]:
    """``names`` plus their upstream, in build order (every compiled feature when None)."""
    if not names:
        return [d.feature_name for d in graph.compiled]
    names = list(names)
    for name in names:
        if name not in graph:
            raise UnknownFeatureError(name, graph.names)
        if graph[name].status == FeatureStatus.ARCHIVED:
            raise MaterializationError(f"feature '{name}' is archived and is not built")
    return graph.with_upstream(names)


def run_build(
    graph: FeatureGraph,
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    console=None,
    resource=None,
    code_versions: Mapping[str, str] | None = None,
    max_features_per_step: int | None = None,
    executor: str = "in_process",
    max_processes: int | None = None,
    partitions: str | None = None,
) -> list[FeatureBuild]:
    """Build the selection through Dagster and return what happened to each feature.

    Args:
        console: a rich console for a progress display (None: no display).
        resource: a preconfigured ``FeatureBuildResource`` (hooks); one is made from settings.
        code_versions: feature -> code version (default: from the registry's history).
        max_features_per_step: the size bound of one multi-asset (default:
            ``FEATURESTORE_MAX_FEATURES_PER_STEP`` or 250, see ``steps.py``).
        executor: ``in_process`` (``dagster.materialize``: every step in this process, one
            after the other) or ``multiprocess`` (each step in a process of its own, up to
            ``max_processes`` at once, default one per CPU; see ``multiprocess.py``).
            Partition runs use the same choice (a range is one run either way).
        partitions: a partition key (``2024-02-01``) or range (``2024-02-01...2024-02-29``)
            of the named features (one partitioning): only that window is rebuilt, in one run,
            with their upstream of the same partitioning; other upstream features are read as
            they are. Without it, partitioned features are rebuilt over all their partitions,
            one run per partitioning, in dependency order (one run when nothing is
            partitioned).

    Raises:
        PartitionError: a key outside the features' partitions, or features that are not
            partitioned alike.
    """
    from featurestore_dagster.orchestration.definitions import FeatureBuildResource, build_assets
    from featurestore_dagster.orchestration.translator import FeatureTranslator

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor '{executor}'; use one of: {', '.join(EXECUTORS)}")
    selected = select_features(graph, names)
    if not selected:
        return []
    runs = plan_runs(graph, selected, list(names or []), partitions)
    # Open the lake once before Dagster starts: an unusable catalog or data path is a clear
    # configuration error (exit 2) here, and a fresh lake is created before any step runs.
    reconcile_records(settings)
    resource = resource or FeatureBuildResource(settings)
    builds: list[FeatureBuild] = []
    resource.on_result = [*resource.on_result, builds.append]
    total = sum(len(run_names) for run_names, _ in runs)
    progress = _progress(console, total)
    if progress is not None:
        task = progress.add_task("building", total=total)
        previous_start = resource.on_start

        def on_start(definition):
            progress.update(task, description=f"building {definition.feature_name}")
            if previous_start:
                previous_start(definition)

        resource.on_start = on_start
        resource.on_result = [*resource.on_result, lambda _build: progress.advance(task)]

    if code_versions is None:  # a registry that cannot be read is an error here (exit 2)
        from featurestore_dagster.registry import Registry
        from featurestore_dagster.store import code_versions as history

        code_versions = history(graph, Registry(settings.registry_url), settings=settings)
    translator = FeatureTranslator(code_versions=code_versions)
    from featurestore_dagster.orchestration.steps import max_features_per_step as default_size

    step_size = max_features_per_step or default_size()
    instance = dagster_instance()
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    tags = {"featurestore/command": "materialize"}
    assets = None
    try:
        for run_names, key_range in runs:
            run_names = builds_skipped_below_failures(graph, run_names, builds)
            if not run_names:
                continue
            before = len(builds)
            keys = [translator.get_asset_key(graph[n]) for n in run_names]
            if executor == "multiprocess":
                from featurestore_dagster.orchestration.multiprocess import run_multiprocess

                reported, result = run_multiprocess(
                    settings,
                    keys,
                    code_versions=code_versions,
                    max_features_per_step=step_size,
                    max_processes=max_processes,
                    instance=instance,
                    run_config=run_config,
                    tags={**tags, "featurestore/executor": "multiprocess"},
                    key_range=key_range,
                )
                builds.extend(reported)
            else:
                if assets is None:
                    assets = build_assets(graph, translator, max_features_per_step=step_size)
                if progress is not None:
                    progress.start()
                result = _materialize(
                    assets, keys, resource, key_range, instance, run_config, dict(tags)
                )
            if len(builds) - before < len(run_names):
                builds += _not_run(graph, run_names, builds[before:], result, step_size)
    finally:
        if progress is not None:
            progress.stop()
    order = {name: i for i, name in enumerate(selected)}  # build order, whatever ran first
    return sorted(builds, key=lambda b: order.get(b.feature_name, len(order)))


def plan_runs(
    graph: FeatureGraph, selected: list[str], names: list[str], partitions: str | None
) -> list[tuple[list[str], object | None]]:
    """The Dagster runs of a build: ``(features, partition key range or None)`` in order."""
    from featurestore_dagster.errors import PartitionError
    from featurestore_dagster.orchestration import partitions as parts
    from featurestore_dagster.orchestration.steps import partition_groups

    if partitions is not None:
        if not names:
            raise PartitionError("name the partitioned features to build (NAME --partition KEY)")
        specs = {graph[n].partitions.key if graph[n].partitions else None for n in names}
        if len(specs) != 1 or None in specs:
            raise PartitionError(
                "--partition needs features partitioned alike; "
                + ", ".join(f"{n}: {_partitioning_text(graph[n])}" for n in names)
            )
        first, last = (
            parts.parse_partition_range(partitions)
            if "..." in partitions
            else (
                partitions,
                None,
            )
        )
        key_range = parts.partition_range(graph[names[0]], first, last)
        (spec,) = specs
        return [
            (
                [n for n in selected if graph[n].partitions and graph[n].partitions.key == spec],
                key_range,
            )
        ]
    chosen = set(selected)
    groups = partition_groups([d for d in graph.compiled if d.feature_name in chosen])
    runs = []
    for (_stage, spec), members in groups:
        key_range = None
        if spec is not None:
            key_range = parts.full_range(members[0])
            if key_range is None:  # no complete partition yet: nothing to build
                continue
        runs.append(([d.feature_name for d in members], key_range))
    return runs


def _partitioning_text(definition) -> str:
    spec = definition.partitions
    return f"{spec.type.value} from {spec.start}" if spec else "not partitioned"


def builds_skipped_below_failures(
    graph: FeatureGraph, names: list[str], builds: list[FeatureBuild]
) -> list[str]:
    """``names`` without those below a feature an earlier run did not publish (reported as
    skipped builds, appended to ``builds``)."""
    from featurestore_dagster.build.publish import BuildStatus

    bad = {b.feature_name: b.status for b in builds if not b.ok}
    if not bad:
        return names
    keep = []
    for name in graph.topological_order(names):
        definition = graph[name]
        parent = next((p for p in definition.upstream_features if p in bad), None)
        if parent is None:
            keep.append(name)
            continue
        bad[name] = BuildStatus.SKIPPED
        builds.append(
            FeatureBuild(
                name,
                definition.version,
                definition.table_name,
                BuildStatus.SKIPPED,
                error=f"upstream '{parent}' was {bad[parent].value}",
            )
        )
    return keep


def _materialize(assets, keys, resource, key_range, instance, run_config, tags):
    import dagster as dg

    from featurestore_dagster.orchestration.definitions import RESOURCE_KEY
    from featurestore_dagster.orchestration.multiprocess import partition_tags

    partition_key = None
    if key_range is not None and key_range.start == key_range.end:
        partition_key = key_range.start
    elif key_range is not None:  # a range is one run (single-run backfill policy)
        tags.update(partition_tags(key_range))
    try:
        return dg.materialize(
            assets,
            selection=keys,
            resources={RESOURCE_KEY: resource},
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            tags=tags,
            partition_key=partition_key,
        )
    except Exception as error:  # a Dagster setup error: report it, no traceback
        raise MaterializationError(f"Dagster could not run the build: {error}") from error


def _not_run(graph, selected, builds, result, step_size) -> list[FeatureBuild]:
    """Builds for the selected features no step reported.

    A feature whose step failed before reporting it (a crash, a lost process, a lock) is
    ``failed`` with the step's error. A feature whose step Dagster never started (a step
    downstream of a failed one) is ``skipped``, naming the upstream that was not published.
    """
    from featurestore_dagster.build.publish import BuildStatus
    from featurestore_dagster.orchestration.steps import plan_steps

    step_errors = _step_failures(result)
    bad = {b.feature_name: b.status for b in builds if not b.ok}
    done = {b.feature_name for b in builds}
    step_of = {n: s.name for s in plan_steps(graph.compiled, step_size) for n in s.features}
    missing = []
    for name in graph.topological_order(n for n in selected if n not in done):
        definition = graph[name]
        parent = next((p for p in definition.upstream_features if p in bad), None)
        step = step_of[name]
        status, reason = BuildStatus.SKIPPED, None
        if parent is not None:
            reason = f"upstream '{parent}' was {bad[parent].value}"
        elif step in step_errors:
            status, reason = BuildStatus.FAILED, f"its Dagster step '{step}' failed: "
            reason += step_errors[step]
        elif bad:
            reason = (
                f"its Dagster step '{step}' did not run: an upstream step did not publish"
                f" every feature ({', '.join(sorted(bad)[:5])})"
            )
        else:
            raise MaterializationError(
                f"the build stopped after {len(builds)} of {len(selected)} feature(s): "
                + _step_failure(result)
            )
        bad[name] = status
        missing.append(
            FeatureBuild(name, definition.version, definition.table_name, status, error=reason)
        )
    return missing


def _step_failures(result) -> dict[str, str]:
    """Step key -> the first line of the error its failure recorded."""
    failures = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key not in failures:
            failures[event.step_key] = _error_line(event.step_failure_data.error)
    return failures


def audit_live_tables(
    graph: FeatureGraph, settings: Settings, names: Iterable[str] | None = None, *, now=None
) -> list[FeatureBuild]:
    """Audit the live tables of ``names`` (default every compiled feature) as they are: the
    checks a build runs, without building, writing or recording anything."""
    from featurestore_dagster.build.live import audit_live
    from featurestore_dagster.orchestration.definitions import FeatureBuildResource

    selected = select_features(graph, names) if names else select_features(graph, None)
    if names:
        selected = [n for n in selected if n in set(names)]
    resource = FeatureBuildResource(settings)
    conn = resource.connect()
    try:
        resource.lock_down(conn, graph)  # custom_sql rules are definition SQL too
        return list(audit_live(conn, graph, selected, now=now))
    finally:
        conn.close()


def dagster_instance():
    """The instance of ``DAGSTER_HOME`` (None: an ephemeral one, when it is not set).

    Raises:
        ConfigError: ``DAGSTER_HOME`` is not an existing absolute folder or its dagster.yaml
            cannot be used (one message instead of Dagster's traceback).
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None
    import dagster as dg

    try:
        return dg.DagsterInstance.get()
    except Exception as error:  # Dagster raises invariant, YAML and config errors here
        reason = " ".join(str(error).split())
        raise ConfigError(
            f"DAGSTER_HOME={home} cannot be used: {reason} (unset DAGSTER_HOME to build with a"
            " temporary Dagster instance)"
        ) from None


def reconcile_records(settings: Settings) -> None:
    """Open the lake once before Dagster starts (an unusable catalog or data path is a clear
    configuration error, exit 2, and a fresh lake is created before any step runs), and write
    the materialization records an earlier run lost from the lake's commits."""
    import logging

    from featurestore_dagster.errors import RegistryError
    from featurestore_dagster.registry import Registry
    from featurestore_dagster.storage.lake import open_lake
    from featurestore_dagster.storage.reconcile import missing_records
    from featurestore_dagster.storage.snapshots import store_commits

    conn = open_lake(settings)
    try:
        commits = store_commits(conn)
    finally:
        conn.close()
    if not commits:
        return
    try:
        registry = Registry(settings.registry_url)
        rows = missing_records(registry, commits)
        if rows:
            registry.record_materializations(rows)
            logging.getLogger("featurestore").warning(
                "%d materialization record(s) were missing; written from the lake", len(rows)
            )
    except RegistryError as error:
        logging.getLogger("featurestore").warning("records not reconciled: %s", error)


def run_check_build(
    graph: FeatureGraph,
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    console=None,
) -> list[FeatureBuild]:
    """Build and audit the selection, then throw it away: the deployment gate.

    Runs in this process on one connection, outside Dagster: nothing is published, so there
    is no materialization to record, and downstream features read the staged upstream results
    (``FeatureBuilder(discard=True)``). The live tables and the lake stay as they were.
    """
    from featurestore_dagster.build.publish import FeatureBuilder
    from featurestore_dagster.orchestration.definitions import FeatureBuildResource
    from featurestore_dagster.storage.lake import open_build_connection

    selected = select_features(graph, names)
    if not selected:
        return []
    progress = _progress(console, len(selected))
    builds: list[FeatureBuild] = []
    conn = open_build_connection(settings)
    try:
        resource = FeatureBuildResource(settings)
        resource.bootstrap(conn)  # project code (pyproject), not a definition
        resource.lock_down(conn, graph)
        builder = FeatureBuilder(conn, graph, discard=True)
        task = progress.add_task("checking", total=len(selected)) if progress else None
        if progress is not None:
            progress.start()

        def on_start(definition) -> None:
            if progress is not None:
                progress.update(task, description=f"checking {definition.feature_name}")

        try:
            for build in builder.build_all(selected, on_start=on_start):
                builds.append(build)
                if progress is not None:
                    progress.advance(task)
        finally:
            if progress is not None:
                progress.stop()
    finally:
        conn.close()
    return builds


def _step_failure(result) -> str:
    """The error message Dagster recorded for the failed step (without its traceback)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return _error_line(event.step_failure_data.error)
    return "the build step did not complete"


def _error_line(error) -> str:
    while error is not None and error.cause is not None and "Failure" not in error.cls_name:
        error = error.cause
    if error is None:
        return "the step failed"
    lines = error.message.strip().splitlines()
    return lines[-1] if lines else error.cls_name


def _progress(console, total: int):
    # No live display without a terminal: it would only leave an empty line in logs and pipes.
    if console is None or not console.is_terminal:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def write_junit(
    builds: list[FeatureBuild], path: Path, unregistered: list[dict] | None = None
) -> None:
    """One test suite per feature, one test case per check (plus one for the build itself);
    a ``registry`` suite fails once per feature that is not registered."""
    suites = ElementTree.Element("testsuites", name="featurestore check")
    if unregistered is not None:
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name="registry",
            tests=str(max(1, len(unregistered))),
            failures=str(len(unregistered)),
        )
        for item in unregistered:
            case = ElementTree.SubElement(
                suite, "testcase", classname="featurestore.registry", name=item["feature_name"]
            )
            message = f"not registered ({item['change']}); run featurestore plan / apply"
            ElementTree.SubElement(case, "failure", message=message).text = message
        if not unregistered:
            ElementTree.SubElement(
                suite, "testcase", classname="featurestore.registry", name="registered"
            )
    for build in builds:
        skipped = build.status.value == "skipped"
        # A skipped build is reported as <skipped>, not counted as a failure.
        built = skipped or build.status.value in {"published", "checked", "rejected"}
        cases = [("build", built, build.error or "")]
        # A check that could not run (its column is missing) is skipped, not failed.
        could_not_run = {c.name for c in build.checks if c.metadata.get("skipped")}
        cases += [(c.name, c.passed or c.name in could_not_run, _describe(c)) for c in build.checks]
        failures = sum(1 for _, passed, _ in cases if not passed)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=build.feature_name,
            tests=str(len(cases)),
            failures=str(failures),
            time=f"{build.seconds:.3f}",
        )
        for name, passed, message in cases:
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"featurestore.{build.feature_name}", name=name
            )
            if skipped and name == "build":
                ElementTree.SubElement(case, "skipped", message=build.error or "skipped")
            elif name in could_not_run and name != "build":
                ElementTree.SubElement(case, "skipped", message=message[:500])
            elif not passed:
                failure = ElementTree.SubElement(case, "failure", message=message[:500])
                failure.text = message
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def _describe(outcome) -> str:
    details = ", ".join(f"{k}={v}" for k, v in outcome.metadata.items())
    return f"{outcome.description} ({details})" if details else outcome.description
