"""``featurestore training-set`` through the real CLI on a real lake."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.consumers.conftest import published, spine_frame  # noqa: F401

runner = CliRunner()


def test_training_set_command(published, tmp_path):  # noqa: F811
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.Table.from_pandas(spine_frame(), preserve_index=False), spine)
    out = tmp_path / "out" / "train.parquet"
    result = runner.invoke(
        app,
        [
            "training-set",
            str(spine),
            "--features",
            "close_price@1.0.0,rate",
            "--timestamp-column",
            "date",
            "-o",
            str(out),
            "--json",
            "--manifest-output",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    table = pq.read_table(out)
    assert table.column_names == ["symbol", "date", "label", "close_price", "rate"]
    assert summary["rows"] == 9 and table.num_rows == 9
    assert summary["manifest"]["features"][0]["version"] == "1.0.0"
    # Rebuilt from the manifest file: the same table.
    again = tmp_path / "again.parquet"
    result = runner.invoke(
        app,
        ["training-set", str(spine), "--manifest", str(tmp_path / "m.json"), "-o", str(again)],
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(again).equals(table)
    text = runner.invoke(app, ["training-set", str(spine), "-f", "close_price", "-t", "date"])
    assert text.exit_code == 0 and "training set ts_" in text.output


def test_training_set_command_bad_input(published, tmp_path):  # noqa: F811
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.Table.from_pandas(spine_frame(), preserve_index=False), spine)
    out = tmp_path / "never.parquet"
    for args, message in (
        (["-f", "nope"], "unknown feature 'nope'"),
        (["-f", "close_price,next_close"], "can see the future"),
        (["-f", "close_price", "-t", "label"], "not a date or timestamp"),
        ([], "name the features"),
    ):
        result = runner.invoke(app, ["training-set", str(spine), *args, "-o", str(out)])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    assert not out.exists()
    missing = runner.invoke(app, ["training-set", str(tmp_path / "none.parquet"), "-f", "rate"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
