"""The ``featurestore`` typer app and the helpers every command module shares.

Command modules (``build``, ``catalog``, ``versions``, ``usage``) import this module and
register their commands on ``app``; this module never imports them.

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
from rich.markup import escape

from featurestore_dagster.errors import FeatureStoreError

app = typer.Typer(
    name="featurestore",
    help="A versioned feature store that lives inside Dagster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Without a terminal (a pipe, a file, CI logs) tables keep their natural width instead of
# being squeezed into 80 columns.
_WIDE = 1_000
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _WIDE)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _WIDE
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class _Overrides:
    definitions: Path | None = None
    registry_url: str | None = None
    lake_catalog: str | None = None
    lake_data: Path | None = None


OVERRIDES = _Overrides()


@app.callback()
def _main(
    definitions: Annotated[
        Path | None,
        typer.Option("--definitions", help=r"Definitions folder \[env FEATURESTORE_DEFINITIONS]."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help=r"Registry URL \[env FEATURESTORE_REGISTRY_URL]."),
    ] = None,
    lake_catalog: Annotated[
        str | None,
        typer.Option(
            "--lake-catalog",
            help=r"Lake catalog, sqlite:PATH or a PostgreSQL URL \[env FEATURESTORE_LAKE_CATALOG].",
        ),
    ] = None,
    lake_data: Annotated[
        Path | None,
        typer.Option("--lake-data", help=r"Lake data folder \[env FEATURESTORE_LAKE_DATA]."),
    ] = None,
    duckdb_path: Annotated[str | None, typer.Option("--duckdb", hidden=True)] = None,
) -> None:
    if duckdb_path is not None:
        from featurestore_dagster.config import RETIRED_MESSAGE

        err.print(f"error: {RETIRED_MESSAGE.format(what='--duckdb')}", markup=False)
        raise typer.Exit(2)
    OVERRIDES.definitions = definitions
    OVERRIDES.registry_url = registry_url
    OVERRIDES.lake_catalog = lake_catalog
    OVERRIDES.lake_data = lake_data


def settings():
    """The command's settings; every command refuses a missing definitions folder (or an
    empty one while the registry has live features) before reading anything else."""
    from featurestore_dagster.config import Settings
    from featurestore_dagster.versioning.guards import require_definitions

    config = Settings.load(
        definitions_path=OVERRIDES.definitions,
        registry_url=OVERRIDES.registry_url,
        lake_catalog=OVERRIDES.lake_catalog,
        lake_data=OVERRIDES.lake_data,
    )
    require_definitions(config)
    return config


def open_store():
    """The ``FeatureStore`` of the command line's settings."""
    from featurestore_dagster.store import FeatureStore

    return FeatureStore(settings=settings())


def handle_errors(function: Callable) -> Callable:
    """Turn library errors into one readable stderr message and the documented exit code."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except FeatureStoreError as error:
            # The message is plain text: "[tool.featurestore]" must not be read as markup.
            err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def load_graph(config):
    from featurestore_dagster.definitions.graph import FeatureGraph

    return FeatureGraph.from_settings(config)
