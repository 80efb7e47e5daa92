"""``featurestore`` command line. Rendering and exit codes live only here.

Exit codes: 0 success; 1 the operation ran and found a failure; 2 bad input or usage.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .errors import FeatureStoreError

app = typer.Typer(
    name="featurestore",
    help="A versioned feature store that lives inside Dagster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class _Overrides:
    definitions: Path | None = None
    registry_url: str | None = None
    duckdb_path: Path | None = None


OVERRIDES = _Overrides()


@app.callback()
def _main(
    definitions: Annotated[
        Path | None,
        typer.Option("--definitions", help="Definitions folder [env FEATURESTORE_DEFINITIONS]."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="Registry URL [env FEATURESTORE_REGISTRY_URL]."),
    ] = None,
    duckdb_path: Annotated[
        Path | None,
        typer.Option("--duckdb", help="DuckDB file [env FEATURESTORE_DUCKDB_PATH]."),
    ] = None,
) -> None:
    OVERRIDES.definitions = definitions
    OVERRIDES.registry_url = registry_url
    OVERRIDES.duckdb_path = duckdb_path


def settings():
    from .config import Settings

    return Settings.load(
        definitions_path=OVERRIDES.definitions,
        registry_url=OVERRIDES.registry_url,
        duckdb_path=OVERRIDES.duckdb_path,
    )


def open_store():
    """The ``FeatureStore`` of the command line's settings."""
    from .store import FeatureStore

    return FeatureStore(settings=settings())


def handle_errors(function: Callable) -> Callable:
    """Turn library errors into one readable stderr message and the SPEC's exit code."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except FeatureStoreError as error:
            err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def load_graph(config):
    from .graph import FeatureGraph

    return FeatureGraph.from_settings(config)


# --- materialize / check ---------------------------------------------------------------------


@app.command()
@handle_errors
def materialize(
    names: Annotated[
        list[str] | None, typer.Argument(help="Features to build (default: all).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build the selected features and their upstream through Dagster into DuckDB."""
    config = settings()
    graph = load_graph(config)
    from .runner import run_build

    builds = run_build(graph, config, names or None, console=None if json_output else err)
    if json_output:
        print_json([build_json(b) for b in builds])
    else:
        render_builds(builds, config)
    if any(not b.ok for b in builds):
        raise typer.Exit(1)


@app.command()
@handle_errors
def check(
    junit_xml: Annotated[
        Path | None, typer.Option("--junit-xml", help="Write a JUnit XML report here.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Deployment gate: definitions load, every feature builds and every blocking check passes."""
    config = settings()
    graph = load_graph(config)
    from .cli_versions import unregistered_features
    from .runner import run_build, write_junit

    unregistered = unregistered_features()
    builds = run_build(graph, config, None, console=None if json_output else err)
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
        render_builds(builds, config)
        for item in unregistered:
            err.print(
                f"[red]{item['feature_name']}[/]: not registered ({item['change']}); run"
                " `featurestore plan` and `featurestore apply`"
            )
        if failed:
            err.print(f"[bold red]check failed:[/] {len(failed)} feature(s) not published")
        if unregistered:
            err.print(f"[bold red]check failed:[/] {len(unregistered)} feature(s) not registered")
        if not failed and not unregistered:
            out.print(f"[bold green]check passed:[/] {len(builds)} feature(s) built and checked")
    if failed or unregistered:
        raise typer.Exit(1)


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


def render_builds(builds, config) -> None:
    table = Table(title=f"Materialized into {config.duckdb_path}", title_justify="left")
    for column in ("feature", "version", "status", "rows", "checks", "time"):
        table.add_column(column, justify="right" if column in {"rows", "time"} else "left")
    colors = {"published": "green", "rejected": "red", "failed": "red", "skipped": "yellow"}
    for b in builds:
        checks = f"{b.checks_passed} passed"
        if b.checks_failed:
            failed = ", ".join(
                c.name + ("" if c.blocking else " (warn)") for c in b.checks if not c.passed
            )
            checks += f", [red]{b.checks_failed} failed[/]: {failed}"
        status = f"[{colors[b.status.value]}]{b.status.value}[/]"
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
        if b.error:
            err.print(f"[red]{b.feature_name}[/]: {b.error}")
        if b.rejected_table:
            err.print(
                f"[red]{b.feature_name}[/]: live table kept; rejected rows in {b.rejected_table}"
            )


# --- list / show --------------------------------------------------------------------------


@app.command("list")
@handle_errors
def list_command(
    feature_type: Annotated[str | None, typer.Option(help="Only this feature type.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Has this tag (repeatable).")
    ] = None,
    skip: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    json_output: JsonOption = False,
) -> None:
    """List features from the definitions, with their registry state (as ``list_features``)."""
    items = open_store().list_features(
        feature_type=feature_type,
        status=status,
        owner=owner,
        tags=tag,
        skip=skip,
        limit=limit,
    )
    if json_output:
        print_json([item.model_dump(mode="json") for item in items])
        return
    table = Table(title=f"{len(items)} feature(s)", title_justify="left")
    columns = ("feature", "version", "registered", "type", "status", "owner", "upstream", "used")
    for column in columns:
        table.add_column(column, justify="right" if column == "used" else "left")
    for item in items:
        table.add_row(
            item.feature_name,
            item.version,
            item.current_version if item.registered else "[yellow]no[/]",
            item.feature_type.value,
            item.status.value,
            item.owner or "-",
            ", ".join(item.upstream_features) or "-",
            str(item.usage_count),
        )
    out.print(table)


@app.command()
@handle_errors
def show(name: str, json_output: JsonOption = False) -> None:
    """Show one feature's definition."""
    config = settings()
    graph = load_graph(config)
    definition = graph[name]
    data = definition_json(definition, graph)
    from .cli_versions import registry_json, render_registry

    registry = registry_json(name)
    if json_output:
        print_json({**data, **registry})
        return
    table = Table(show_header=False, title=name, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in {"transformation", "validation_rules"}:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        table.add_row(key, str(value) if value not in (None, "") else "-")
    out.print(table)
    out.print(f"[bold]transformation[/] ({definition.transformation.transformation_type.value})")
    out.print(definition.transformation.code.rstrip(), markup=False)
    if definition.validation_rules:
        out.print("[bold]validation rules[/]")
        for rule in definition.validation_rules:
            blocking = "blocking" if rule.is_blocking else "warning"
            label = rule.name or rule.rule_type.value
            out.print(f"  - {label} ({blocking}): {json.dumps(rule.parameters)}")
    render_registry(registry)


def definition_json(definition, graph) -> dict[str, Any]:
    data = definition.model_dump(mode="json")
    data["duckdb_table"] = definition.table_name
    data["downstream_features"] = graph.downstream(definition.feature_name)
    data["definition_file"] = str(definition.path) if definition.path else None
    return data


# Registered on import: plan, apply, bump, versions, rollback, activate, deprecate, archive
# (cli_versions); lineage, usage record/history, stats (cli_usage).
from . import cli_usage, cli_versions  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    # `python -m featurestore_dagster.cli`: the command modules registered on the package's
    # module (featurestore_dagster.cli), not on this __main__ copy, so run that one.
    from featurestore_dagster.cli import main as package_main

    package_main()
