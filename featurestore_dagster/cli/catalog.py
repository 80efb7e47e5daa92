"""``featurestore list`` and ``featurestore show``: what the definitions and registry hold."""

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from featurestore_dagster.cli.app import (
    JsonOption,
    app,
    handle_errors,
    load_graph,
    open_store,
    out,
    print_json,
    settings,
)


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
    from featurestore_dagster.cli.versions import registry_json, render_registry

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
    # Whether the transformation can see the future (found in the SQL, or declared).
    data["lookahead"] = definition.is_lookahead
    data["lookahead_reasons"] = list(definition.lookahead_reasons)
    return data
