"""Dagster Definitions for a feature graph: bounded multi-assets, checks, schedules.

Features compile into a few subsettable multi-assets (one per build step, see ``steps.py``)
rather than one ``@asset`` each: a multi-asset compiled 5x faster and ran at 1.18x plain DuckDB
versus 1.55x, mostly because one step keeps one DuckDB connection for all its features instead
of opening one per asset. Dagster does not enforce blocking checks between outputs of one
multi-asset, so ``FeatureBuilder`` skips the descendants of a rejected feature itself; between
steps, Dagster's own step dependencies do.
"""

import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.errors import UnregisteredBuildError
from featurestore_dagster.orchestration.automation import automation_sensor
from featurestore_dagster.orchestration.naming import describe_cron, schedule_names
from featurestore_dagster.orchestration.steps import BuildStep, plan_steps
from featurestore_dagster.orchestration.translator import FeatureTranslator, build_specs
from featurestore_dagster.versioning.plan import is_dev_version

# What only a run needs (building, publishing, the registry's SQL) is imported when a step
# runs: loading the code location (every Dagster process, the UI's included) never pays for it.
if TYPE_CHECKING:
    import duckdb

    from featurestore_dagster.build.publish import FeatureBuild

RESOURCE_KEY = "featurestore"
# Runs tagged with it refuse unregistered definitions (scheduled runs are).
REGISTERED_ONLY_TAG = "featurestore/registered_only"

# A step that rejects one feature still fails (the run fails, as with any failed blocking
# check), but the steps that depend only on what it did publish (the user's model assets on
# healthy features) run: Dagster's default waits for the whole upstream step to succeed.
EXECUTOR = dg.in_process_executor.configured(
    {"step_dependency_config": {"require_upstream_step_success": False}},
    name="featurestore_in_process",
)


@dataclass
class FeatureBuildResource:
    """Run-time settings of the build steps (the compiled feature assets), plus hooks the CLI
    uses for progress. Internal, under resource key ``featurestore``; the user's own assets
    use ``FeatureStoreResource`` (``resource.py``).

    Attributes:
        settings: where the lake (and registry) live.
        on_start: called with each feature definition before it is built.
        on_result: called with each ``FeatureBuild`` (the registry records it here).
        now: the time freshness checks compare with (default: now).
    """

    settings: Settings
    on_start: Callable | None = None
    on_result: list[Callable[["FeatureBuild"], None]] = field(default_factory=list)
    now: datetime | None = None
    record_materializations: bool = True
    report_dir: str | None = None  # multiprocess runs: each step leaves its builds here

    def connect(self) -> "duckdb.DuckDBPyConnection":
        from featurestore_dagster.storage.lake import open_build_connection

        return open_build_connection(self.settings)

    def bootstrap(self, conn: "duckdb.DuckDBPyConnection") -> None:
        if self.settings.bootstrap:
            from featurestore_dagster.build.transformations import (
                ensure_importable_root,
                import_transformation,
            )

            ensure_importable_root(self.settings.project_root)
            import_transformation(self.settings.bootstrap)(conn)

    def lock_down(self, conn: "duckdb.DuckDBPyConnection", graph: FeatureGraph) -> None:
        """Sandbox ``conn`` before any definition runs: external access off except the
        declared file sources of ``graph``, configuration locked."""
        from featurestore_dagster.storage.lake import lock_build_connection

        sources = sorted({s for d in graph.compiled for s in d.file_sources})
        lock_build_connection(conn, self.settings, sources)


def build_assets(
    graph: FeatureGraph,
    translator: FeatureTranslator | None = None,
    *,
    max_features_per_step: int | None = None,
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """One multi-asset per build step (see ``steps.py``) plus one external asset per source."""
    translator = translator or FeatureTranslator()
    compiled = graph.compiled
    feature_specs, check_specs, source_specs = build_specs(graph, translator)
    if not feature_specs:
        return list(source_specs)
    specs_by_name = {d.feature_name: s for d, s in zip(compiled, feature_specs, strict=True)}
    # By feature name, not by AssetKey: hashing thousands of keys again costs more than this.
    name_of = {id(s.key): d.feature_name for d, s in zip(compiled, feature_specs, strict=True)}
    checks_by_name: dict[str, list[dg.AssetCheckSpec]] = {}
    for spec in check_specs:
        checks_by_name.setdefault(name_of[id(spec.asset_key)], []).append(spec)
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for step in plan_steps(compiled, max_features_per_step):
        specs = [specs_by_name[n] for n in step.features]
        checks = [c for n in step.features for c in checks_by_name.get(n, ())]
        assets.append(_step_asset(step, specs, checks, graph, translator, specs_by_name))
    return [*assets, *source_specs]


def _step_asset(
    step: BuildStep,
    specs: list[dg.AssetSpec],
    check_specs: list[dg.AssetCheckSpec],
    graph: FeatureGraph,
    translator: FeatureTranslator,
    all_specs: dict[str, dg.AssetSpec],
) -> dg.AssetsDefinition:
    names_by_key = {spec.key: name for spec, name in zip(specs, step.features, strict=True)}
    # Upstream features of this step built by earlier steps of the same run: this step only
    # runs when they were materialized, i.e. published.
    parents = {p for n in step.features for p in graph[n].upstream_features} - set(step.features)
    parent_by_key = {all_specs[p].key: p for p in parents if p in all_specs}
    # A step holds features of one partitioning (steps.py); a range of partitions is one run.
    partitions_def = specs[0].partitions_def

    @dg.multi_asset(
        name=step.name,
        specs=specs,
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys={RESOURCE_KEY},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
    )
    def build_features(context: dg.AssetExecutionContext):
        from featurestore_dagster.build.live import audit_live
        from featurestore_dagster.build.publish import BuildStatus, FeatureBuilder
        from featurestore_dagster.orchestration.partitions import run_window
        from featurestore_dagster.registry.materializations import MaterializationRecorder

        resource: FeatureBuildResource = getattr(context.resources, RESOURCE_KEY)
        selected = [names_by_key[k] for k in context.selected_asset_keys]
        selected_checks = set(context.selected_asset_check_keys)
        if context.run.tags.get(REGISTERED_ONLY_TAG) == "true":
            try:
                refuse_unregistered(graph, selected, translator.get_code_version)
            except UnregisteredBuildError as error:
                raise dg.Failure(description=str(error), allow_retries=False) from None
        failures: list[str] = []
        reported: list[FeatureBuild] = []
        recorder = MaterializationRecorder(
            resource.settings.registry_url, context.run.run_id, translator.get_code_version, graph
        )
        conn = resource.connect()
        builder = None

        def reconnect():  # a fresh locked connection (bootstrap ran on the first one)
            fresh = resource.connect()
            resource.lock_down(fresh, graph)
            return fresh

        try:
            resource.bootstrap(conn)  # project code (pyproject), not a definition
            resource.lock_down(conn, graph)
            in_run = context.run.asset_selection  # None: the whole job runs
            builder = FeatureBuilder(
                conn,
                graph,
                now=resource.now,
                published_upstream=[
                    p for k, p in parent_by_key.items() if in_run is None or k in in_run
                ],
                commit_info=recorder.commit_info,
                reconnect=reconnect,
            )
            # Checks run on their own (from the UI) audit the live table; nothing is built.
            audited = _checked_only(context, names_by_key)
            for build in audit_live(conn, graph, audited, now=resource.now):
                key = translator.get_asset_key(graph[build.feature_name])
                if build.error:
                    context.log.error(f"{build.feature_name}: {build.error}")
                    for check_key in sorted(
                        (k for k in selected_checks if k.asset_key == key), key=str
                    ):
                        yield dg.AssetCheckResult(
                            asset_key=key,
                            check_name=check_key.name,
                            passed=False,
                            description=build.error,
                        )
                yield from _check_results(key, build, selected_checks)
            window = run_window(context) if partitions_def else None
            for build in builder.build_all(selected, on_start=resource.on_start, window=window):
                _label_unregistered(build, translator.get_code_version(graph[build.feature_name]))
                reported.append(build)
                for hook in resource.on_result:
                    hook(build)
                if resource.record_materializations:
                    recorder.add(build)
                key = translator.get_asset_key(graph[build.feature_name])
                yield from _events(context, key, build, selected_checks)
                if build.status != BuildStatus.PUBLISHED:
                    failures.append(_failure_line(build, graph[build.feature_name].path))
        finally:
            conn.close()
            if builder is not None:
                builder.conn.close()  # the same connection, or the one it swapped in
            recorder.flush(context.log)
            if resource.report_dir is not None:
                from featurestore_dagster.orchestration.multiprocess import write_report

                write_report(resource.report_dir, step.name, reported)
        if failures:
            raise dg.Failure(
                description="Some features were not published:\n" + "\n".join(failures),
                allow_retries=False,
            )

    return build_features


def _checked_only(context, names_by_key) -> list[str]:
    """Features whose checks were selected without the feature itself."""
    selected = set(context.selected_asset_keys)
    keys = {k.asset_key for k in context.selected_asset_check_keys} - selected
    return sorted(names_by_key[k] for k in keys if k in names_by_key)


def refuse_unregistered(graph: FeatureGraph, names, code_version: Callable) -> None:
    """Stop a registered-only run (schedules, ``materialize --registered-only``) before it
    builds a definition that is not a registered version."""
    unregistered = unregistered_builds(graph, names, code_version)
    if unregistered:
        raise UnregisteredBuildError(
            "refusing to build definitions that are not registered versions: "
            + ", ".join(f"{name} ({version})" for name, version in unregistered)
            + "; run `featurestore plan` and `featurestore apply` first"
        )


def unregistered_builds(graph: FeatureGraph, names, code_version: Callable) -> list[tuple]:
    """``(feature, dev version)`` of each of ``names`` that would build unregistered."""
    versions = ((name, code_version(graph[name])) for name in names)
    return [(name, version) for name, version in versions if is_dev_version(version)]


def _label_unregistered(build: "FeatureBuild", code_version: str) -> None:
    # Data that no registered version describes carries its dev version, never the declared one.
    if is_dev_version(code_version):
        build.version = code_version


def _events(context, key: dg.AssetKey, build: "FeatureBuild", selected_checks):
    from featurestore_dagster.build.publish import BuildStatus

    log = context.log
    if build.status == BuildStatus.SKIPPED:
        log.warning(f"{build.feature_name}: skipped, {build.error}")
        return
    if build.status == BuildStatus.FAILED:
        log.error(f"{build.feature_name}: build failed: {build.error}")
        return
    if build.status == BuildStatus.REJECTED:
        names = ", ".join(c.name for c in build.failed_blocking)
        log.error(
            f"{build.feature_name}: blocking check(s) {names} failed; live table kept,"
            f" rejected rows in {build.rejected_table}"
        )
    else:
        for outcome in build.checks:
            if not outcome.passed:
                log.warning(f"{build.feature_name}: non-blocking check {outcome.name} failed")
        # The materialization first: check results then point at the data they audited.
        yield dg.MaterializeResult(asset_key=key, metadata=run_metadata(build))
    yield from _check_results(key, build, selected_checks)


def _check_results(key: dg.AssetKey, build: "FeatureBuild", selected_checks):
    for outcome in build.checks:
        check_key = dg.AssetCheckKey(key, outcome.name)
        if check_key not in selected_checks:
            continue
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome.blocking
            else dg.AssetCheckSeverity.WARN,
            description=_audited(outcome.description, build.window),
            metadata=_clean(
                {**outcome.metadata, "partition_window": build.window}
                if build.window
                else outcome.metadata
            ),
        )


def _audited(description: str, window: str | None) -> str:
    """A check of a partition run says which window it audited."""
    return f"{description} (audited window {window})" if window else description


def run_metadata(build: "FeatureBuild") -> dict[str, object]:
    """Row count and value statistics, so the Dagster UI plots them over time."""
    metadata: dict[str, object] = {
        "dagster/row_count": build.rows or 0,
        "version": build.version,
        "build_seconds": round(build.seconds, 3),
        "checks_passed": build.checks_passed,
        "checks_failed": build.checks_failed,
    }
    if build.window:
        metadata["partition_window"] = build.window
    profile = build.profile
    if profile is not None:
        for name in ("min", "max", "mean", "null_fraction"):
            value = getattr(profile, name)
            if value is not None:
                metadata[name] = float(value)
    return metadata


def _failure_line(build: "FeatureBuild", path=None) -> str:
    from featurestore_dagster.build.publish import BuildStatus

    where = build.feature_name + (f" ({path})" if path else "")
    if build.status == BuildStatus.REJECTED:
        names = ", ".join(c.name for c in build.failed_blocking)
        return f"- {where}: rejected by blocking check(s) {names}"
    return f"- {where}: {build.status.value} ({build.error})"


def _clean(metadata: dict) -> dict:
    out = {}
    for key, value in metadata.items():
        if isinstance(value, bool | int | float | str) or value is None:
            out[key] = value
        else:
            out[key] = (
                dg.MetadataValue.json(value) if isinstance(value, dict | list) else str(value)
            )
    return out


def build_schedules(
    graph: FeatureGraph, translator: FeatureTranslator | None = None
) -> tuple[list[dg.ScheduleDefinition], list]:
    """One schedule per distinct cron: its features and everything downstream, drafts left out."""
    translator = translator or FeatureTranslator()
    from featurestore_dagster.definitions.models import Automation, FeatureStatus

    by_cron: dict[str, list[str]] = {}
    for definition in graph.compiled:
        # `automation: on_cron` runs on the cron through its automation condition instead.
        if (
            definition.schedule
            and definition.status != FeatureStatus.DRAFT
            and definition.automation != Automation.ON_CRON
        ):
            by_cron.setdefault(definition.schedule, []).append(definition.feature_name)
    schedules, jobs = [], []
    slugs = schedule_names(list(by_cron))  # for people: "weekdays_at_22_00", not a hash
    for cron in sorted(by_cron):
        names = [
            n
            for n in graph.with_downstream(by_cron[cron])
            if graph[n].status not in (FeatureStatus.DRAFT, FeatureStatus.ARCHIVED)
        ]
        when = describe_cron(cron)
        job = dg.define_asset_job(
            name=f"rebuild_{slugs[cron]}",
            selection=dg.AssetSelection.assets(
                *[translator.get_asset_key(graph[n]) for n in names]
            ),
            description=f"Rebuild {when} (cron '{cron}'): {', '.join(names)}",
            tags={REGISTERED_ONLY_TAG: "true"},
        )
        jobs.append(job)
        schedules.append(
            dg.ScheduleDefinition(
                name=slugs[cron],
                job=job,
                cron_schedule=cron,
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description=f"{when} (cron '{cron}'): {', '.join(sorted(by_cron[cron]))}"
                " and downstream; unregistered definitions are refused",
            )
        )
    return schedules, jobs


@contextlib.contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector while building large definitions.

    Building the specs, the multi-asset and its check specs allocates millions of long-lived
    objects; each generation-2 collection walks all of them again. Pausing it cut a 10,000-
    feature load from 33-41 s to 26 s here (1,000 features: ~1.5 s -> ~1.3 s). Nested uses
    are safe: only the outermost one turns collection back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_definitions(
    graph: FeatureGraph,
    settings: Settings,
    *,
    translator: FeatureTranslator | None = None,
    resource: FeatureBuildResource | None = None,
) -> dg.Definitions:
    """Everything Dagster needs for ``graph``: assets, checks, schedules, resource, executor."""
    translator = translator or FeatureTranslator()
    with paused_gc():
        assets = build_assets(graph, translator)
        schedules, jobs = build_schedules(graph, translator)
    # No extra "all features" job: the UI's "Materialize all" does that, and a job selecting
    # every asset cost ~0.5 s of load time per 1,000 features.
    automated = [
        translator.get_asset_key(d)
        for d in graph.compiled
        if translator.get_automation_condition(d) is not None
    ]
    return dg.Definitions(
        assets=assets,
        schedules=schedules,
        sensors=[automation_sensor(automated)] if automated else [],
        jobs=jobs,
        resources={RESOURCE_KEY: resource or FeatureBuildResource(settings)},
        executor=EXECUTOR,
    )


def code_location(settings: Settings | None = None) -> dg.Definitions:
    """Entry point of ``workspace.yaml`` (and of ``FeatureStoreComponent``): build everything
    from the configured folder, or from ``settings``."""
    logging.getLogger("featurestore").setLevel(logging.INFO)
    settings = settings or Settings.load()
    with paused_gc():
        graph = FeatureGraph.from_settings(settings)
    from featurestore_dagster.usage.api import registry_usage_metadata

    versions, history = registry_facts(graph, settings)
    translator = FeatureTranslator(
        code_versions=versions,
        history=history,
        # Usage counts, top models, last use; {} (no extra metadata) while there is no usage.
        usage=registry_usage_metadata(settings.registry_url),
    )
    definitions = build_definitions(graph, settings, translator=translator)
    # The code location lives as long as its process (webserver, code server, run worker):
    # moved out of the collector's generations, its objects are never walked again (a 1,000-
    # feature load then serves requests without multi-second generation-2 collections).
    gc.freeze()
    return definitions


def registry_facts(
    graph: FeatureGraph, settings: Settings
) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Code versions and each feature's registered versions, from the registry's history.

    Loading the UI never creates a registry: without one (or when it cannot be read, with a
    warning) every feature is an unregistered build and has no history.
    """
    from featurestore_dagster.errors import RegistryError
    from featurestore_dagster.registry import Registry
    from featurestore_dagster.registry.engine import sqlite_file_missing
    from featurestore_dagster.versioning.code_versions import code_versions

    if sqlite_file_missing(settings.registry_url):
        return code_versions(graph, None, settings=settings), {}
    try:
        registry = Registry(settings.registry_url)
        return code_versions(graph, registry, settings=settings), registry.version_history()
    except RegistryError as error:
        logging.getLogger("featurestore").warning(
            "registry unreadable, every feature is shown as an unregistered build: %s", error
        )
        return code_versions(graph, None, settings=settings), {}
