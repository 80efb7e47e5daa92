"""``featurestore sql``, ``gc``, ``doctor`` and ``migrate``: the lake and the registry schema."""

from __future__ import annotations

import csv
import io
import sys
from typing import Annotated

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
    settings,
)
from featurestore_dagster.errors import ConfigError, LakeError

MAX_ROWS = 10_000  # printed as a table; --json / --csv print everything


@app.command()
@handle_errors
def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="One SQL query (read-only). Omitted: DuckDB's interactive shell."),
    ] = None,
    json_output: JsonOption = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Query the lake read-only: features.NAME, _latest.NAME, raw.TABLE, attached files.

    No query: DuckDB's own shell on the lake, read-only (SQL can also be piped on stdin).
    """
    from featurestore_dagster.storage.lake import open_lake

    config = settings()
    if query is None:
        _shell(config)
        return
    conn = open_lake(config, read_only=True)
    try:
        try:
            cursor = conn.execute(query)
        except Exception as error:  # noqa: BLE001 - DuckDB raises many kinds for bad SQL
            raise LakeError(f"query failed: {' '.join(str(error).split())}") from None
        if cursor.description is None:
            return
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        conn.close()
    if json_output:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif csv_output:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title_justify="left")
        for column in columns:
            table.add_column(escape(column))
        for row in rows[:MAX_ROWS]:
            table.add_row(*(escape("NULL" if v is None else str(v)) for v in row))
        out.print(table)
        if len(rows) > MAX_ROWS:
            err.print(f"{len(rows):,} rows; the first {MAX_ROWS:,} shown (use --csv for all)")


def _shell(config) -> None:
    """DuckDB's shell on the lake; the built-in prompt loop when no duckdb executable of this
    DuckDB version is installed."""
    from featurestore_dagster.storage.lake import display_catalog, open_lake
    from featurestore_dagster.storage.shell import duckdb_executable, run_shell

    open_lake(config, read_only=True).close()  # a bad catalog or attach: one message, exit 2
    executable = duckdb_executable()
    where = display_catalog(config.lake_catalog)
    if executable is not None:
        err.print(
            f"DuckDB shell on the lake {escape(where)} (read-only, catalog featurestore);"
            " .quit or Ctrl-D to leave",
            highlight=False,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        raise typer.Exit(run_shell(executable, config))
    err.print(
        f"the duckdb executable (package duckdb-cli) is not installed: a minimal prompt on the"
        f" lake {escape(where)} (read-only). End a query with ';', quit with .quit or Ctrl-D.",
        highlight=False,
    )
    _prompt_loop(config)


def _prompt_loop(config) -> None:
    """A minimal read-eval-print loop on ``open_lake``."""
    from featurestore_dagster.storage.lake import open_lake

    conn = open_lake(config, read_only=True)
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("lake> " if not buffer else "  ..> ")
            except EOFError:
                break
            if not buffer and line.strip() in {".quit", ".exit", "\\q"}:
                break
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
            text, buffer = "\n".join(buffer), []
            try:
                relation = conn.sql(text)
                if relation is not None:
                    out.print(str(relation), markup=False, highlight=False)
            except Exception as error:  # noqa: BLE001 - show DuckDB's message and go on
                err.print(f"error: {error}", markup=False)
    finally:
        conn.close()


@app.command()
@handle_errors
def gc(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Expire snapshots older than this (30d, 36h).")
    ] = "30d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be expired; change nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Merge small data files, expire old lake snapshots and delete data files nothing
    references.

    Never expired: the latest publish of every registered major version of every feature,
    every snapshot a training set references, and the current snapshot.
    """
    from featurestore_dagster.storage.retention import parse_age

    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise ConfigError(f"--older-than: {error}") from None
    result = open_store().collect_garbage(older_than=age, dry_run=dry_run)
    if json_output:
        print_json(
            {
                "expired": result.expired,
                "kept": {str(k): v for k, v in sorted(result.kept.items())},
                "files_deleted": result.files_deleted,
                "files_merged": result.files_merged,
                "dry_run": dry_run,
            }
        )
        return
    verb = "would expire" if dry_run else "expired"
    out.print(f"{verb} {len(result.expired)} snapshot(s); kept {len(result.kept)}:")
    for snapshot, why in sorted(result.kept.items()):
        out.print(f"  {snapshot}: {escape(why)}")
    if not dry_run:
        out.print(
            f"merged {result.files_merged} small data file(s);"
            f" deleted {result.files_deleted} data file(s)"
        )


@app.command()
@handle_errors
def doctor(json_output: JsonOption = False) -> None:
    """Check the lake and the registry agree; write the materialization records the registry
    lost (a killed run, a registry lost mid-run) from the lake's snapshots."""
    rows = open_store().reconcile_materializations()
    if json_output:
        print_json({"reconciled": rows})
        return
    if not rows:
        out.print("lake and registry agree: every publish has its materialization record")
        return
    for row in rows:
        out.print(
            f"{escape(row['feature_name'])}: {row['status']} {escape(row['version'])} at lake"
            f" snapshot {row['snapshot_id']}: record written"
        )


@app.command()
@handle_errors
def migrate(json_output: JsonOption = False) -> None:
    """Upgrade the registry's schema in place (also done on first use), keeping every row."""
    from featurestore_dagster.registry.engine import registry_engine
    from featurestore_dagster.registry.migrate import upgrade_registry

    config = settings()
    try:
        before, after = upgrade_registry(registry_engine(config.registry_url))
    except Exception as error:  # noqa: BLE001 - SQLAlchemy/Alembic errors, told in one line
        from featurestore_dagster.errors import RegistryError

        raise RegistryError(f"cannot migrate the registry: {error}") from None
    if json_output:
        print_json({"from": before, "to": after})
        return
    if before == after:
        out.print(f"registry schema is current (revision {after})")
    else:
        out.print(f"registry schema upgraded from {before or 'empty'} to revision {after}")
