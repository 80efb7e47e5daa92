"""``featurestore training-set``: a point-in-time training set from a spine file.

Registered on ``cli.app`` when ``cli`` is imported. Reads the spine (Parquet or CSV), asks the
store for the training set, writes it (Parquet or CSV) and prints a summary; the manifest is
stored in the registry and can be written to a file to rebuild the same table later.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
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
from featurestore_dagster.errors import TrainingSetError

# Spines at least this long get a progress display (smaller ones finish before it shows).
PROGRESS_ROWS = 100_000


def _read_table(path: Path):
    import pyarrow as pa

    if not path.is_file():
        raise TrainingSetError(f"spine file {path} does not exist")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix.endswith((".csv", ".csv.gz")):
            import pyarrow.csv as pv

            return pv.read_csv(path)
    except (pa.ArrowException, OSError) as error:
        raise TrainingSetError(f"spine file {path} cannot be read: {error}") from None
    raise TrainingSetError(f"spine file {path}: use a .parquet or .csv file")


def _write_table(table, path: Path) -> None:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    if suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        pq.write_table(table, temporary)
    elif suffix == ".csv":
        import pyarrow.csv as pv

        pv.write_csv(table, temporary)
    else:
        raise TrainingSetError(f"output {path}: use a .parquet or .csv file")
    temporary.replace(path)  # a complete file or none


def _manifest_argument(value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise TrainingSetError(f"manifest file {path} cannot be read: {error}") from None
    return value  # a training set id


@contextmanager
def _phase(label: str, show: bool):
    """A spinner with the phase and elapsed time on stderr (only for large spines)."""
    if not show:
        yield
        return
    started = time.perf_counter()
    with err.status(label):
        yield
    err.print(f"{label} [dim]{time.perf_counter() - started:.1f}s[/]")


@app.command("training-set")
@handle_errors
def training_set(
    spine: Annotated[
        Path, typer.Argument(help="Spine file (.parquet or .csv): entity keys and label times.")
    ],
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            "-f",
            help="Comma-separated: name, name@1.2.0 (a version), name@1 (a major line).",
        ),
    ] = None,
    timestamp_column: Annotated[
        str | None,
        typer.Option(
            "--timestamp-column",
            "-t",
            help="The spine's label-time column (default: event_timestamp, else its only"
            " date/timestamp column).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the training set here (.parquet or .csv)."),
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl",
            help="Values older than this are NULL, e.g. 30d or 36h (default: each feature's ttl).",
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(
            "--label-column",
            help="Numeric spine column: each feature's correlation with it is stored.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Record usage for this model.")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="The model's version.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="dev, staging or production.")
    ] = None,
    allow_lookahead: Annotated[
        bool,
        typer.Option(
            "--allow-lookahead", help="Accept features whose transformation can see the future."
        ),
    ] = False,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest", help="Rebuild a stored training set: its id, or a manifest .json file."
        ),
    ] = None,
    manifest_output: Annotated[
        Path | None,
        typer.Option("--manifest-output", help="Also write the manifest to this .json file."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build a point-in-time training set: for each spine row, each feature's latest value at
    or before the row's time (NULL when none, or older than the TTL).

    Example: featurestore training-set labels.parquet --features stock_rsi_14d,stock_beta_60d@1
    --timestamp-column date -o train.parquet
    """
    if features is None and manifest is None:
        raise TrainingSetError("name the features (--features a,b@1) or a --manifest to rebuild")
    table = _read_table(spine)
    show = table.num_rows >= PROGRESS_ROWS
    store = open_store()
    requested = [f.strip() for f in features.split(",") if f.strip()] if features else None
    what = f"{len(requested)} feature(s)" if requested else "the manifest's features"
    label = f"joining {what} over {table.num_rows:,} spine rows"
    started = time.perf_counter()
    with _phase(label, show):
        result = store.get_training_set(
            table,
            requested,
            timestamp_column=timestamp_column,
            ttl=ttl,
            model=model,
            model_version=model_version,
            environment=environment,
            label_column=label_column,
            allow_lookahead=allow_lookahead,
            manifest=_manifest_argument(manifest),
        )
    seconds = time.perf_counter() - started
    if output is not None:
        with _phase(f"writing {output}", show):
            _write_table(result.to_arrow(), output)
    data = result.manifest
    if manifest_output is not None:
        manifest_output.parent.mkdir(parents=True, exist_ok=True)
        manifest_output.write_text(json.dumps(data, indent=2) + "\n")
    summary = {
        "training_set_id": data["training_set_id"],
        "rows": result.num_rows,
        "columns": result.to_arrow().column_names,
        "output": str(output) if output else None,
        "seconds": round(seconds, 3),
        "null_fraction": _null_fractions(result),
        "manifest": data,
    }
    if json_output:
        print_json(summary)
        return
    _render(summary, data)


def _null_fractions(result) -> dict[str, float]:
    table = result.to_arrow()
    rows = max(table.num_rows, 1)
    return {c: round(table[c].null_count / rows, 6) for c in result.feature_columns}


def _render(summary: dict[str, Any], manifest: dict[str, Any]) -> None:
    table = Table(title=f"training set {summary['training_set_id']}", title_justify="left")
    for column in ("column", "version", "snapshot", "ttl", "null fraction", "correlation"):
        table.add_column(column)
    correlations = manifest.get("correlations") or {}
    for feature in manifest["features"]:
        corr = correlations.get(feature["request"])
        table.add_row(
            feature["column"],
            feature["version"],
            str(feature["snapshot_id"]) if feature["snapshot_id"] is not None else "-",
            feature["ttl"] or "-",
            f"{summary['null_fraction'][feature['column']]:.2%}",
            f"{corr:.4f}" if corr is not None else "-",
        )
    out.print(table)
    where = f" -> {summary['output']}" if summary["output"] else " (no --output: nothing written)"
    out.print(f"{summary['rows']:,} rows in {summary['seconds']:.2f}s{where}")
    if manifest.get("model"):
        out.print(
            f"usage recorded for model {manifest['model']} {manifest['model_version']}"
            f" ({manifest['environment']}), execution_id {summary['training_set_id']}"
        )
