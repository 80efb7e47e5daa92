"""``featurestore`` commands of lineage and usage: ``lineage``, ``usage record``,
``usage history`` and ``stats``.

Registered on ``cli.app`` when ``cli`` is imported. They read definitions and the registry only
(no Dagster import), so they start fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from featurestore_dagster.cli.app import JsonOption, app, handle_errors, open_store, out, print_json
from featurestore_dagster.errors import UsageError

usage_app = typer.Typer(
    name="usage",
    help="Record and read which models use which features.",
    no_args_is_help=True,
)
app.add_typer(usage_app, name="usage")

_STATUS_COLORS = {"active": "green", "draft": "yellow", "deprecated": "magenta", "archived": "red"}


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


# --- lineage ---------------------------------------------------------------------------------


@app.command()
@handle_errors
def lineage(
    name: Annotated[str, typer.Argument(help="Feature name.")],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Follow the graph all the way.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Upstream and downstream features as trees, then the models that used the feature."""
    result = open_store().get_feature_lineage(name, recursive=recursive)
    if json_output:
        print_json(result.model_dump(mode="json"))
        return
    out.print(_lineage_tree(result, "upstream"))
    out.print(_lineage_tree(result, "downstream"))
    counts = (
        f"{result.direct_dependents_count} direct dependent(s),"
        f" {result.total_dependents_count} in total"
    )
    out.print(counts)
    if not recursive:
        hidden = _hidden_levels(result)
        if hidden:
            out.print(f"[dim]{hidden}; use --recursive to show the whole graph[/]")
    _render_consumers(result)


def _label(result, name: str) -> str:
    node = result.nodes[name]
    color = _STATUS_COLORS.get(node.status, "white")
    version = node.version if node.registered else f"{node.version}, not registered"
    return f"[bold]{escape(name)}[/] [dim]{escape(version)}[/] [{color}]{node.status}[/]"


def _lineage_tree(result, direction: str) -> Tree:
    """A tree from ``result.nodes`` (the graph's edges); a feature reached twice (a diamond)
    is expanded once and marked afterwards."""
    edges = "upstream_features" if direction == "upstream" else "downstream_features"
    root = Tree(f"{_label(result, result.feature_name)}  [dim]({direction})[/]")
    expanded: set[str] = set()

    def children(name: str) -> list[str]:
        return [c for c in getattr(result.nodes[name], edges) if c in result.nodes]

    # Iterative depth-first walk in drawing order (a deep graph must not hit Python's
    # recursion limit): the first occurrence of a feature is expanded, later ones are marked.
    stack = [(root, result.feature_name, 0)]
    while stack:
        branch, name, depth = stack.pop()
        node = result.nodes[name]
        has_more = bool(children(name)) or (direction == "upstream" and bool(node.sources))
        if name in expanded:
            if has_more:
                branch.label = f"{branch.label} [dim](shown above)[/]"
            continue
        expanded.add(name)
        if depth and not result.recursive:
            continue  # without --recursive only the feature's own edges are drawn
        if direction == "upstream":
            for source in node.sources:
                branch.add(f"[cyan]source[/] {escape(source)}")
        pending = [(branch.add(_label(result, c)), c, depth + 1) for c in children(name)]
        stack.extend(reversed(pending))
    if not root.children:
        root.add(f"[dim]no {direction} features[/]")
    return root


def _hidden_levels(result) -> str:
    more_up = any(
        parent not in result.nodes
        for name in result.upstream_features
        for parent in result.nodes[name].upstream_features
    )
    more_down = any(
        child not in result.nodes
        for name in result.downstream_features
        for child in result.nodes[name].downstream_features
    )
    parts = [
        f"more {d} levels exist"
        for d, more in (("upstream", more_up), ("downstream", more_down))
        if more
    ]
    return " and ".join(parts)


def _render_consumers(result) -> None:
    if not result.consuming_models:
        out.print("[dim]No model has recorded using this feature.[/]")
        return
    table = Table(title="Models that used it", title_justify="left")
    table.add_column("model", min_width=8)
    table.add_column("model version", min_width=7)
    table.add_column("environment", no_wrap=True)
    table.add_column("uses", justify="right", no_wrap=True)
    table.add_column("feature versions", min_width=7)
    table.add_column("last used (UTC)", no_wrap=True)
    for model in result.consuming_models:
        table.add_row(
            escape(model.used_by_model),
            escape(model.model_version),
            model.environment,
            f"{model.usage_count:,}",
            ", ".join(model.feature_versions),
            _when(model.last_used_at),
        )
    out.print(table)


# --- usage record / history ------------------------------------------------------------------


def _pairs(values: list[str] | None, option: str, *, numbers: bool, required: bool = True):
    """``NAME=VALUE`` options -> {name: value}; ``NAME`` alone -> None when not ``required``."""
    parsed: dict[str, Any] = {}
    for text in values or []:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not name or (required and not sep):
            raise UsageError(f"{option} {text!r}: expected NAME=VALUE")
        if name in parsed:
            raise UsageError(f"{option}: feature '{name}' is given twice")
        if not sep:
            parsed[name] = None
        elif numbers:
            try:
                parsed[name] = float(value)
            except ValueError:
                raise UsageError(f"{option} {text!r}: '{value}' is not a number") from None
        else:
            parsed[name] = value.strip()
    return parsed


def _load_json(path: Path) -> Any:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as error:
        raise UsageError(f"--from-json {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259), whatever the locale
    except UnicodeDecodeError as error:
        raise UsageError(
            f"--from-json {path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset"
            f" {error.start}); save the file as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--from-json {path}: invalid JSON: {error}") from None
    except RecursionError:
        raise UsageError(f"--from-json {path}: JSON nested too deeply") from None
    except ValueError as error:  # an integer of more than 4,300 digits
        raise UsageError(f"--from-json {path}: invalid JSON: {error}") from None


@usage_app.command("record")
@handle_errors
def record(
    model: Annotated[
        str | None,
        typer.Option("--model", "--used-by-model", help="The model that used the features."),
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="The model's version.")
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option("--env", "--environment", help="dev | staging | production."),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature", "-f", help="NAME=IMPORTANCE (or NAME: importance unknown); repeatable."
        ),
    ] = None,
    correlation: Annotated[
        list[str] | None,
        typer.Option("--correlation", "-c", help=r"NAME=CORRELATION within \[-1, 1]; repeatable."),
    ] = None,
    feature_version: Annotated[
        list[str] | None,
        typer.Option(
            "--feature-version", help="NAME=VERSION (default: the current registered version)."
        ),
    ] = None,
    execution_id: Annotated[str | None, typer.Option("--execution-id", help="Run id.")] = None,
    duration_ms: Annotated[
        float | None,
        typer.Option(
            "--duration-ms", "--execution-duration-ms", help="Run duration in milliseconds."
        ),
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp", "--usage-timestamp", help="ISO 8601 time of the run (default: now)."
        ),
    ] = None,
    feature_name: Annotated[
        str | None,
        typer.Option("--feature-name", help="One feature, with the two options below."),
    ] = None,
    feature_importance: Annotated[
        float | None, typer.Option("--feature-importance", help="Importance of --feature-name.")
    ] = None,
    correlation_with_target: Annotated[
        float | None,
        typer.Option("--correlation-with-target", help="Correlation of --feature-name."),
    ] = None,
    from_json: Annotated[
        Path | None,
        typer.Option(
            "--from-json",
            help="JSON file ('-': stdin) holding a model run, a usage record or a list of"
            " them; the options above fill fields the items leave out.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Record one model run's use of features, atomically (all or nothing).

    Example: featurestore usage record --model alpha --model-version 2.3.0 --env production
    --feature stock_rsi_14d=0.31 --feature stock_daily_return=0.12 --correlation stock_rsi_14d=-0.08
    """
    shared = {
        "used_by_model": model,
        "model_version": model_version,
        "environment": environment,
        "execution_id": execution_id,
        "execution_duration_ms": duration_ms,
        "usage_timestamp": timestamp,
    }
    if feature_name is not None:  # the one-feature form, with the REST field names
        value = "" if feature_importance is None else f"={feature_importance!r}"
        feature = [*(feature or []), f"{feature_name}{value}"]
        if correlation_with_target is not None:
            correlation = [*(correlation or []), f"{feature_name}={correlation_with_target!r}"]
    elif feature_importance is not None or correlation_with_target is not None:
        raise UsageError("--feature-importance and --correlation-with-target need --feature-name")
    store = open_store()
    if from_json is not None:
        if feature or correlation or feature_version:
            raise UsageError("give features either with --feature or in --from-json, not both")
        payload = _load_json(from_json)
        items = payload if isinstance(payload, list) else [payload]
        defaults = {k: v for k, v in shared.items() if v is not None}
        items = [{**defaults, **item} if isinstance(item, dict) else item for item in items]
        records = store.record_usage_batch(items, return_records=True).records
    else:
        if not feature:
            raise UsageError("name at least one --feature NAME=IMPORTANCE (or use --from-json)")
        missing = [
            o
            for o, v in (
                ("--model", model),
                ("--model-version", model_version),
                ("--env", environment),
            )
            if v is None
        ]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}")
        records = store.record_model_usage(
            **shared,
            features=_pairs(feature, "--feature", numbers=True, required=False),
            correlations=_pairs(correlation, "--correlation", numbers=True),
            feature_versions=_pairs(feature_version, "--feature-version", numbers=False),
        )
    if json_output:
        print_json([r.model_dump(mode="json") for r in records])
        return
    runs = sorted({(r.used_by_model, r.model_version, r.environment.value) for r in records})
    out.print(
        f"[green]recorded[/] {len(records)} usage record(s) for "
        + ", ".join(f"{escape(m)} {escape(v)} ({e})" for m, v, e in runs)
    )
    _render_run(records)


def _render_run(records) -> None:
    table = Table()
    for column in ("id", "feature", "version", "importance", "correlation"):
        table.add_column(column, justify="left" if column in {"feature", "version"} else "right")
    for r in records:
        table.add_row(
            str(r.id) if r.id is not None else "-",
            escape(r.feature_name),
            r.feature_version,
            _number(r.feature_importance),
            _number(r.correlation_with_target),
        )
    out.print(table)


def _render_history(records, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    for column in ("model", "model version", "env", "version", "importance", "correlation"):
        table.add_column(
            column, justify="right" if column in {"importance", "correlation"} else "left"
        )
    table.add_column("execution")
    for r in records:
        table.add_row(
            _when(r.usage_timestamp),
            escape(r.used_by_model),
            escape(r.model_version),
            r.environment.value,
            r.feature_version,
            _number(r.feature_importance),
            _number(r.correlation_with_target),
            escape(r.execution_id or "-"),
        )
    out.print(table)


@usage_app.command("history")
@handle_errors
def history(
    name: Annotated[str, typer.Argument(help="Feature name.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """A feature's usage records, newest first."""
    records = open_store().get_feature_usage_history(name, limit=limit)
    if json_output:
        print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        out.print(f"No model has recorded using '{escape(name)}'.")
        return
    _render_history(records, f"Usage of {name} (newest first, at most {limit})")


# --- stats -----------------------------------------------------------------------------------


@app.command()
@handle_errors
def stats(
    name: Annotated[str, typer.Argument(help="Feature name.")],
    json_output: JsonOption = False,
) -> None:
    """Usage statistics of a feature: totals, and per version, model and environment."""
    result = open_store().get_feature_statistics(name)
    if json_output:
        print_json(result.model_dump(mode="json"))
        return
    summary = Table(show_header=False, title=f"Usage of {name}", title_justify="left")
    summary.add_column("field", style="bold")
    summary.add_column("value")
    for label, value in (
        ("current version", result.current_version or "not registered"),
        ("total usage", f"{result.total_usage:,}"),
        ("unique models", f"{result.unique_models:,}"),
        ("environments", ", ".join(result.environments) or "-"),
        ("avg importance", _number(result.avg_importance)),
        ("avg correlation", _number(result.avg_correlation)),
        ("first used (UTC)", _when(result.first_used_at)),
        ("last used (UTC)", _when(result.last_used_at)),
    ):
        summary.add_row(label, escape(str(value)))
    out.print(summary)
    if not result.total_usage:
        return
    _breakdown(
        "By version",
        ["version", "uses", "models", "avg importance", "avg correlation", "last used (UTC)"],
        [
            [
                v.feature_version,
                f"{v.usage_count:,}",
                str(v.unique_models),
                _number(v.avg_importance),
                _number(v.avg_correlation),
                _when(v.last_used_at),
            ]
            for v in result.by_version
        ],
    )
    _breakdown(
        "By model",
        [
            "model",
            "uses",
            "environments",
            "versions",
            "avg importance",
            "avg correlation",
            "last used (UTC)",
        ],
        [
            [
                escape(m.used_by_model),
                f"{m.usage_count:,}",
                ", ".join(m.environments),
                ", ".join(m.feature_versions),
                _number(m.avg_importance),
                _number(m.avg_correlation),
                _when(m.last_used_at),
            ]
            for m in result.by_model
        ],
    )
    _breakdown(
        "By environment",
        ["environment", "uses", "models", "last used (UTC)"],
        [
            [e.environment, f"{e.usage_count:,}", str(e.unique_models), _when(e.last_used_at)]
            for e in result.by_environment
        ],
    )


def _breakdown(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        numeric = column in {"uses", "models"} or column.startswith("avg")
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=column.startswith("last")
        )
    for row in rows:
        table.add_row(*row)
    out.print(table)
