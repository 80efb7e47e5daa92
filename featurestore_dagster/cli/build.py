"""``featurestore materialize`` and ``featurestore check``: builds and the deployment gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from featurestore_dagster.cli.app import (
    JsonOption,
    app,
    err,
    handle_errors,
    load_graph,
    out,
    print_json,
    settings,
)


@app.command()
@handle_errors
def materialize(
    names: Annotated[
        list[str] | None, typer.Argument(help="Features to build (default: all).")
    ] = None,
    registered_only: Annotated[
        bool,
        typer.Option(
            "--registered-only",
            help="Refuse (exit 2) to build any definition that is not a registered version.",
        ),
    ] = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="in_process: build steps one after the other in this process. multiprocess:"
            " each build step (a group of up to 250 features) in a process of its own, several"
            " at once; independent features then build in parallel.",
        ),
    ] = "in_process",
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="With --executor multiprocess: at most this many steps at once (default: one"
            " per CPU).",
        ),
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(
            "--partition",
            help="Rebuild only this partition (2024-02-01) of the named partitioned features.",
        ),
    ] = None,
    partition_range: Annotated[
        str | None,
        typer.Option(
            "--partition-range",
            help="Rebuild only these partitions (2024-02-01...2024-02-29), in one run.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build the selected features and their upstream through Dagster into DuckDB.

    A definition that is not a registered version is built as VERSION+dev.FINGERPRINT, with a
    warning; --registered-only refuses it instead.

    With --partition or --partition-range, only that window of the named time-partitioned
    features is computed, audited and replaced (with their upstream of the same partitioning;
    other upstream features are read as they are). A key outside the partitions is exit 2.
    """
    config = settings()
    graph = load_graph(config)
    from featurestore_dagster.orchestration.definitions import (
        refuse_unregistered,
        unregistered_builds,
    )
    from featurestore_dagster.orchestration.runner import run_build, select_features
    from featurestore_dagster.registry import Registry
    from featurestore_dagster.store import code_versions

    versions = code_versions(graph, Registry(config.registry_url), settings=config)
    selected = select_features(graph, names or None)
    if registered_only:
        refuse_unregistered(graph, selected, lambda d: versions[d.feature_name])
    from featurestore_dagster.errors import PartitionError

    if partition is not None and partition_range is not None:
        raise PartitionError("give --partition or --partition-range, not both")
    if partition_range is not None and "..." not in partition_range:
        raise PartitionError(f"'{partition_range}' is not a partition range: write FIRST...LAST")
    builds = run_build(
        graph,
        config,
        names or None,
        console=None if json_output else err,
        partitions=partition if partition is not None else partition_range,
        code_versions=versions,
        executor=executor.replace("-", "_"),
        max_processes=processes,
    )
    warn_unregistered(unregistered_builds(graph, selected, lambda d: versions[d.feature_name]))
    if json_output:
        print_json([build_json(b) for b in builds])
    else:
        render_builds(builds, config, graph)
    if any(not b.ok for b in builds):
        raise typer.Exit(1)


@app.command()
@handle_errors
def check(
    names: Annotated[
        list[str] | None, typer.Argument(help="Features to check (default: all).")
    ] = None,
    no_build: Annotated[
        bool,
        typer.Option("--no-build", help="Audit the live tables as they are instead of building."),
    ] = False,
    junit_xml: Annotated[
        Path | None, typer.Option("--junit-xml", help="Write a JUnit XML report here.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Deployment gate: definitions load, every feature builds and every blocking check passes.

    With --no-build the live tables are audited as they are (nothing is built or written).
    Otherwise nothing is published: each build is audited and then discarded, so the live
    tables stay exactly as they were.
    """
    config = settings()
    graph = load_graph(config)
    from featurestore_dagster.cli.versions import unregistered_features
    from featurestore_dagster.orchestration.runner import (
        audit_live_tables,
        run_check_build,
        write_junit,
    )

    unregistered = unregistered_features()
    if names:
        unregistered = [u for u in unregistered if u["feature_name"] in set(names)]
    if no_build:
        builds = audit_live_tables(graph, config, names or None)
    else:
        # Built and audited, then discarded: the gate never changes the live tables.
        builds = run_check_build(graph, config, names or None, console=None if json_output else err)
    if junit_xml:
        write_junit(builds, junit_xml, unregistered)
    failed = [b for b in builds if not b.ok]
    if json_output:
        print_json(
            {
                "passed": not failed and not unregistered,
                "features": [build_json(b) for b in builds],
                "unregistered": unregistered,
            }
        )
    else:
        title = None if no_build else "Checked (built, audited and discarded)"
        render_builds(builds, config, graph, audited=no_build, title=title)
        for item in unregistered:
            err.print(
                f"[red]{item['feature_name']}[/]: not registered ({item['change']}); run"
                " `featurestore plan` and `featurestore apply`"
            )
        if failed:
            what = "failed their audit" if no_build else "did not pass"
            err.print(f"[bold red]check failed:[/] {len(failed)} feature(s) {what}")
        if unregistered:
            err.print(f"[bold red]check failed:[/] {len(unregistered)} feature(s) not registered")
        if not failed and not unregistered:
            done = "audited" if no_build else "built and checked"
            out.print(f"[bold green]check passed:[/] {len(builds)} feature(s) {done}")
    if failed or unregistered:
        raise typer.Exit(1)


def warn_unregistered(unregistered: list[tuple[str, str]]) -> None:
    if not unregistered:
        return
    shown = ", ".join(f"{name} ({version})" for name, version in unregistered[:10])
    more = f" and {len(unregistered) - 10} more" if len(unregistered) > 10 else ""
    err.print(
        f"[yellow]warning:[/] built {len(unregistered)} definition(s) that are not registered"
        f" versions: {escape(shown)}{more}; run `featurestore plan` and `featurestore apply` to"
        " register them",
        markup=True,
    )


def build_json(build) -> dict[str, Any]:
    return {
        "feature_name": build.feature_name,
        "version": build.version,
        "table": build.table,
        "status": build.status.value,
        "rows": build.rows,
        "seconds": round(build.seconds, 3),
        "error": build.error,
        "rejected_table": build.rejected_table,
        "window": build.window,
        "snapshot_id": build.snapshot_id,
        "checks": [
            {
                "name": c.name,
                "passed": c.passed,
                "blocking": c.blocking,
                "description": c.description,
                "metadata": c.metadata,
            }
            for c in build.checks
        ],
    }


def render_builds(builds, config, graph=None, *, audited: bool = False, title=None) -> None:
    """The summary table, then why each feature did not pass (file, feature, each failed
    check with what it expected and found)."""
    from featurestore_dagster.storage.lake import display_catalog

    if title is None:
        lake = display_catalog(config.lake_catalog)
        title = "Audited live tables" if audited else f"Materialized into the lake {lake}"
    table = Table(title=title, title_justify="left")
    for column in ("feature", "version", "status", "rows", "checks", "time"):
        table.add_column(column, justify="right" if column in {"rows", "time"} else "left")
    colors = {
        "published": "green",
        "checked": "green",
        "rejected": "red",
        "failed": "red",
        "skipped": "yellow",
    }
    labels = {"published": "passed", "rejected": "failed", "failed": "missing"} if audited else {}
    for b in builds:
        skipped = [c for c in b.checks if c.metadata.get("skipped")]
        failed = [c for c in b.checks if not c.passed and not c.metadata.get("skipped")]
        checks = f"{b.checks_passed} passed"
        if failed:
            names = ", ".join(c.name + ("" if c.blocking else " (warn)") for c in failed)
            checks += f", [red]{len(failed)} failed[/]: {names}"
        if skipped:
            checks += f", [yellow]{len(skipped)} skipped[/]: {', '.join(c.name for c in skipped)}"
        value = b.status.value
        status = f"[{colors[value]}]{labels.get(value, value)}[/]"
        table.add_row(
            b.feature_name,
            b.version,
            status,
            f"{b.rows:,}" if b.rows is not None else "-",
            checks if b.checks else "-",
            f"{b.seconds:.2f}s",
        )
    out.print(table)
    for b in builds:
        where = escape(b.feature_name)
        definition = (
            graph[b.feature_name] if graph is not None and b.feature_name in graph else None
        )
        if definition is not None and definition.path is not None:
            where += f" ({escape(str(definition.path))})"
        if b.error:
            err.print(f"[red]{where}[/]: {escape(b.error)}")
        for c in b.checks:
            if c.passed:
                continue
            if c.metadata.get("skipped"):
                reason = c.metadata.get("reason") or "could not run"
                err.print(f"[yellow]{where}[/]: check {c.name} skipped: {escape(str(reason))}")
            elif b.status.value == "rejected" or not c.blocking:
                err.print(f"[red]{where}[/]: check {c.name} failed: {escape(_why(c))}")
        if b.rejected_table:
            err.print(f"[red]{where}[/]: live table kept; rejected rows in {b.rejected_table}")


def _why(outcome) -> str:
    """A failed check in words: its problem, or its description, plus expected vs found."""
    metadata = outcome.metadata
    text = str(metadata.get("problem") or outcome.description)
    if "expected_columns" in metadata and "actual_columns" in metadata:
        found = metadata["actual_columns"]
        found = ", ".join(found) if isinstance(found, dict | list) else str(found)
        text += f" (expected columns {', '.join(metadata['expected_columns'])}; found {found})"
    return text
