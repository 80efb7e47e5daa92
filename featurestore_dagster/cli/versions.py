"""``featurestore`` commands of the registry: plan, apply, bump, versions, rollback, lifecycle.

Registered on ``cli.app`` when ``cli`` is imported. None of these import Dagster: they only
read definitions and the registry, so they start fast.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from featurestore_dagster.cli.app import (
    JsonOption,
    app,
    err,
    handle_errors,
    open_store,
    out,
    print_json,
)

WindowOption = Annotated[
    int | None,
    typer.Option(
        "--window-days",
        min=1,
        help=r"Impact window for production usage \[pyproject impact_window_days, default 90].",
    ),
]
ChangelogOption = Annotated[str | None, typer.Option("-m", "--message", help="Changelog text.")]
_MARKS = {"new": "[green]+[/]", "changed": "[yellow]~[/]", "removed": "[red]-[/]"}


def _dump(model) -> dict[str, Any]:
    return model.model_dump(mode="json")


# --- plan / apply ----------------------------------------------------------------------------


@app.command()
@handle_errors
def plan(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when anything is not registered.")
    ] = False,
    window_days: WindowOption = None,
    json_output: JsonOption = False,
) -> None:
    """Compare definitions with the registry: changes, category, needed version, impact."""
    result = open_store().plan(window_days=window_days)
    if json_output:
        print_json([_dump(item) for item in result.features])
    else:
        render_plan(result)
    if check and result.pending:
        raise typer.Exit(1)


def render_plan(result) -> None:
    lines: list[str] = []
    pending = result.pending
    for item in pending:
        lines.extend(plan_item_lines(item, result.window_days))
    counts = {kind: 0 for kind in ("new", "changed", "removed", "unchanged")}
    for item in result.features:
        counts[item.change.value] += 1
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    refused = result.refused
    if refused:
        summary += f"; [red]{len(refused)} refused[/]"
    if result.needing_consent:
        summary += f"; [red]{len(result.needing_consent)} need --allow-breaking[/]"
    if not pending:
        lines.append(f"[green]Everything is registered[/] ({summary}).")
    elif refused:
        names = " ".join(escape(f.feature_name) for f in refused)
        lines.append(
            f"Plan: {summary}. Fix the versions first (`featurestore bump NAME` for {names}),"
            " then run `featurestore apply`."
        )
    else:
        lines.append(f"Plan: {summary}. Run `featurestore apply` to register.")
    out.print("\n".join(lines))  # one print: rich renders 1,000 lines at once much faster


def plan_item_lines(item, window_days: int) -> list[str]:
    name = escape(item.feature_name)
    if item.change.value == "new":
        return [f"{_MARKS['new']} [bold]{name}[/] {item.declared_version} (new)"]
    if item.change.value == "removed":
        return [
            f"{_MARKS['removed']} [bold]{name}[/] {item.registered_version}: definition removed;"
            " `featurestore apply --archive-removed` archives it (its history stays)"
        ]
    color = {"breaking": "red", "data": "yellow", "metadata": "cyan"}.get(item.category, "white")
    need = f", needs >= {item.minimum_version}" if item.minimum_version else ""
    lines = [
        f"{_MARKS['changed']} [bold]{name}[/] {item.registered_version} ->"
        f" {item.declared_version}  [{color}]{item.category}[/]{need}"
    ]
    for diff in item.diffs:
        lines.extend(diff_lines(diff))
    if item.downstream_features:
        lines.append(f"    downstream affected: {escape(', '.join(item.downstream_features))}")
    if item.production_models:
        models = ", ".join(
            f"{u.used_by_model}@{u.model_version} (uses {u.feature_name})"
            for u in item.production_models
        )
        lines.append(f"    [red]production models (last {window_days} days):[/] {escape(models)}")
        lines.append("    [red]apply needs --allow-breaking[/]")
    if item.note and item.ok:
        lines.append(f"    [yellow]note:[/] {escape(item.note)}")
    if not item.ok:
        lines.append(f"    [red]refused:[/] {escape(item.reason or '')}")
    return lines


def diff_lines(diff) -> list[str]:
    head = f"    {diff.field} [dim]({diff.category})[/]"
    old, new = diff.old, diff.new
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        lines = [head + ":"]
        changes = difflib.unified_diff(
            old.strip("\n").splitlines(), new.strip("\n").splitlines(), lineterm="", n=1
        )
        for line in list(changes)[2:]:
            style = {"+": "green", "-": "red", "@": "dim"}.get(line[:1], "")
            text = escape("      " + line)
            lines.append(f"[{style}]{text}[/]" if style else text)
        return lines
    return [f"{head}: {escape(_short(old))} -> {escape(_short(new))}"]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


@app.command()
@handle_errors
def apply(
    allow_breaking: Annotated[
        bool,
        typer.Option(
            "--allow-breaking", help="Consent to breaking changes used by production models."
        ),
    ] = False,
    archive_removed: Annotated[
        bool,
        typer.Option(
            "--archive-removed",
            help="Archive registered features whose definition file is gone (history stays).",
        ),
    ] = False,
    window_days: WindowOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register what plan shows, atomically (all or nothing)."""
    result = open_store().apply_plan(
        allow_breaking=allow_breaking, window_days=window_days, archive_removed=archive_removed
    )
    versions = result.versions
    if json_output:
        print_json([_dump(v) for v in versions])
    else:
        for v in versions:
            out.print(
                f"registered [bold]{escape(v.feature_name)}[/] {v.version} ({v.change_category})"
            )
        for name in result.archived:
            out.print(f"archived [bold]{escape(name)}[/] (its definition file is gone)")
        done = []
        if versions:
            done.append(f"{len(versions)} version(s) registered")
        if result.archived:
            done.append(f"{len(result.archived)} feature(s) archived")
        out.print("; ".join(done) + "." if done else "Nothing to register.")
    if result.kept_removed:
        names = ", ".join(result.kept_removed)
        err.print(
            f"[yellow]warning:[/] not archived: {escape(names)} (registered, but the definition"
            " file is gone); run `featurestore apply --archive-removed` to archive, or restore"
            " the file"
        )


@app.command()
@handle_errors
def bump(
    name: str,
    major: Annotated[bool, typer.Option("--major", help="Bump the major version.")] = False,
    minor: Annotated[bool, typer.Option("--minor", help="Bump the minor version.")] = False,
    patch: Annotated[bool, typer.Option("--patch", help="Bump the patch version.")] = False,
    message: ChangelogOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write the required (or asked) version and a changelog into the definition file."""
    levels = [lvl for lvl, on in (("major", major), ("minor", minor), ("patch", patch)) if on]
    if len(levels) > 1:
        err.print("[bold red]error:[/] give at most one of --major, --minor, --patch")
        raise typer.Exit(2)
    result = open_store().bump(name, levels[0] if levels else None, message)
    if json_output:
        print_json(_dump(result))
        return
    if not result.changed:
        reason = (
            "it is not registered yet; apply registers its declared version"
            if result.registered_version is None
            else "its definition matches the registered version"
        )
        out.print(f"nothing to bump for {escape(name)} {result.version}: {reason}")
        return
    out.print(
        f"{escape(name)}: {result.previous_version} -> [bold]{result.version}[/]"
        f" ({result.category} change) written to {escape(str(result.definition_file))}"
    )


# --- versions / rollback ---------------------------------------------------------------------


@app.command()
@handle_errors
def versions(name: str, json_output: JsonOption = False) -> None:
    """Registered versions of a feature, newest first."""
    items = open_store().get_feature_versions(name)
    if json_output:
        print_json([_dump(v) for v in items])
        return
    if not items:
        out.print(f"{escape(name)} has no registered version yet (run `featurestore apply`).")
        return
    table = Table(title=f"{name}: {len(items)} version(s)", title_justify="left")
    for column in ("version", "category", "created", "by", "breaking", "rolled back", "changelog"):
        table.add_column(column)
    for v in items:
        rolled = v.rolled_back_at.strftime("%Y-%m-%d %H:%M") if v.is_rolled_back else ""
        changelog = v.changelog or ""
        if v.restored_from:
            changelog += f" [dim](restores {v.restored_from})[/]"
        table.add_row(
            v.version,
            v.change_category,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(v.created_by or "-"),
            "yes" if v.breaking_changes else "",
            rolled,
            changelog,
        )
    out.print(table)


@app.command()
@handle_errors
def rollback(
    name: str,
    to: Annotated[str, typer.Option("--to", help="The registered version to restore.")],
    message: ChangelogOption = None,
    allow_breaking: Annotated[
        bool, typer.Option("--allow-breaking", help="Consent if production models are affected.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Restore version X's transformation, rules and schema as a new version."""
    store = open_store()
    version = store.rollback_version(
        name, to_version=to, changelog=message, allow_breaking=allow_breaking
    )
    # The data too: from the last retained publish of X's data, in one lake transaction.
    data = store.restore_feature_data(name, to, new_version=version.version)
    if json_output:
        print_json({**_dump(version), "data": data.__dict__})
        return
    out.print(
        f"{escape(name)}: restored {to} as [bold]{version.version}[/]"
        f" ({version.change_category}); {escape(version.changelog or '')}"
    )
    if data.restored:
        out.print(
            f"{escape(name)}: live table {escape(data.message)}; lake snapshot {data.snapshot_id}"
        )
    else:
        err.print(f"[yellow]{escape(name)}[/]: {escape(data.message)}")


# --- lifecycle -------------------------------------------------------------------------------


def _lifecycle(name: str, operation: str, message: str | None, json_output: bool) -> None:
    store = open_store()
    before = store.graph[name].status.value
    method = {
        "activate": store.activate_feature,
        "deprecate": store.deprecate_feature,
        "archive": store.delete_feature,
    }[operation]
    info = method(name, changelog=message)
    if operation in {"deprecate", "archive"}:
        warn_production_models(store, name, operation)
    if json_output:
        print_json(_dump(info))
        return
    out.print(
        f"{escape(name)}: {before} -> [bold]{info.status.value}[/] (version {info.current_version})"
    )


def warn_production_models(store, name: str, operation: str) -> None:
    """Say which production models still use a feature that was just deprecated or archived."""
    from featurestore_dagster.versioning.changes import impact_window_days
    from featurestore_dagster.versioning.plan import model_names

    window = impact_window_days(store.settings)
    usage = [u for u in store.registry.production_usage({name}, window_days=window)]
    if usage:
        done = {"deprecate": "deprecated", "archive": "archived"}[operation]
        err.print(
            f"[yellow]warning:[/] {escape(name)} is {done} but production model(s)"
            f" {escape(', '.join(model_names(usage)))} used it within the last {window} days"
        )


@app.command()
@handle_errors
def activate(name: str, message: ChangelogOption = None, json_output: JsonOption = False) -> None:
    """draft -> active."""
    _lifecycle(name, "activate", message, json_output)


@app.command()
@handle_errors
def deprecate(name: str, message: ChangelogOption = None, json_output: JsonOption = False) -> None:
    """active -> deprecated (refused while active features depend on it)."""
    _lifecycle(name, "deprecate", message, json_output)


@app.command()
@handle_errors
def archive(name: str, message: ChangelogOption = None, json_output: JsonOption = False) -> None:
    """Archive (soft delete; refused while non-archived features depend on it)."""
    _lifecycle(name, "archive", message, json_output)


# --- used by show / check --------------------------------------------------------------------


def registry_json(name: str, *, runs: int = 5) -> dict[str, Any]:
    """Registry facts ``show`` adds: registered version, history, usage and the last runs."""
    store = open_store()
    info = store.get_feature(name)
    history = store.registry.versions(name)
    return {
        "current_version": info.current_version,
        "registered": info.registered,
        "version_count": len(history),
        "usage_count": info.usage_count,
        "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
        "created_at": info.created_at.isoformat() if info.created_at else None,
        "updated_at": info.updated_at.isoformat() if info.updated_at else None,
        "deprecated_at": info.deprecated_at.isoformat() if info.deprecated_at else None,
        "materializations": [_dump(m) for m in store.materializations(name, limit=runs)],
    }


def render_registry(data: dict[str, Any]) -> None:
    if not data["registered"]:
        out.print("[yellow]not registered[/] (run `featurestore plan` / `apply`)")
    else:
        out.print(
            f"[bold]registry[/]: version {data['current_version']}, {data['version_count']}"
            f" version(s) in history, used {data['usage_count']} time(s)"
        )
    runs = data["materializations"]
    if not runs:
        out.print("no materializations recorded")
        return
    table = Table(title="last runs", title_justify="left")
    for column in ("time", "version", "status", "rows", "checks", "snapshot", "run id"):
        table.add_column(column, justify="right" if column in {"rows", "snapshot"} else "left")
    for run in runs:
        checks = run["checks"] or []
        failed = [c["name"] for c in checks if not c.get("passed")]
        summary = f"{len(checks) - len(failed)} passed"
        if failed:
            summary += f", {len(failed)} failed: {', '.join(failed)}"
        table.add_row(
            str(run["created_at"])[:19].replace("T", " "),
            run["version"],
            run["status"],
            f"{run['rows']:,}" if run["rows"] is not None else "-",
            escape(summary),
            str(run["snapshot_id"]) if run.get("snapshot_id") is not None else "-",
            (run["run_id"] or "-")[:8],
        )
    out.print(table)


def unregistered_features() -> list[dict[str, Any]]:
    """What ``check`` reports as not registered: every pending plan entry."""
    return [
        {
            "feature_name": item.feature_name,
            "change": item.change.value,
            "category": item.category,
            "declared_version": item.declared_version,
            "registered_version": item.registered_version,
        }
        for item in open_store().plan().pending
    ]
