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
    """List features from the definitions, with their registry state and usage."""
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
    rows = [
        {
            "feature": item.feature_name,
            "version": item.version,
            "registered": item.current_version if item.registered else "[yellow]no[/]",
            "type": item.feature_type.value,
            "status": item.status.value,
            "owner": item.owner or "-",
            "upstream": ", ".join(item.upstream_features) or "-",
            "used": str(item.usage_count),
        }
        for item in items
    ]
    columns = ["feature", "version", "registered", "type", "status", "owner", "upstream", "used"]
    # Names are what a reader looks for: never cut them. On a narrow terminal the upstream
    # and owner columns go first (show NAME and --json have them).
    hidden = []
    table = _list_table(len(items), columns, rows)
    for optional in ("upstream", "owner"):
        if _width(table) <= out.width:
            break
        columns.remove(optional)
        hidden.append(optional)
        table = _list_table(len(items), columns, rows)
    out.print(table)
    if hidden:
        out.print(f"[dim]({' and '.join(hidden)} hidden to fit; see --json or show NAME)[/]")


def _list_table(count: int, columns: list[str], rows: list[dict[str, str]]) -> Table:
    table = Table(title=f"{count} feature(s)", title_justify="left")
    for column in columns:
        table.add_column(
            column, no_wrap=column != "upstream", justify="right" if column == "used" else "left"
        )
    for row in rows:
        table.add_row(*(row[column] for column in columns))
    return table


def _width(table: Table) -> int:
    return table.__rich_measure__(out, out.options).maximum


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
