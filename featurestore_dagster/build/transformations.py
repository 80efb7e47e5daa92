"""Running a transformation into a table: SQL (DuckDB SELECT) or python (``module:function``).

A python transformation is called as ``fn(conn, inputs, **parameters)``:

- ``conn``: the ``duckdb.DuckDBPyConnection`` of the build, sandboxed like the SQL ones
  (``build/sandbox.py``: no file outside the lake and the declared sources, settings locked);
- ``inputs``: ``{name: duckdb.DuckDBPyRelation}`` for each upstream feature (by feature name)
  and each table source (by ``schema.table``);
- ``parameters``: ``transformation.parameters``.

It returns a pandas or polars DataFrame, a pyarrow Table or a DuckDB relation holding exactly the
entity columns, the timestamp column and the value column. The result goes into DuckDB through
Arrow, never a Python loop over rows.

A python transformation is code the project imports: it runs with the privileges of the user
running the build (it can open files or sockets through Python itself). Only the DuckDB
connection it receives is sandboxed. Review python transformations like any other code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from featurestore_dagster.build.partitions import BuildWindow, sample_window, windowed_sql
from featurestore_dagster.build.sandbox import execute_one
from featurestore_dagster.definitions.models import FeatureDefinition, TransformationType
from featurestore_dagster.definitions.sql import (
    check_one_select,
    quote_table,
    substitute_parameters,
)


class PythonImportError(ValueError):
    """A ``module:function`` reference that does not resolve to a callable."""


def render_sql(definition: FeatureDefinition, window: BuildWindow | None = None) -> str:
    """The definition's SQL with ``{{ parameters }}`` substituted as literals.

    A partitioned feature's ``{{ partition_start }}`` / ``{{ partition_end }}`` become the
    window's dates (a sample window when none is given: checking references, binding).
    """
    transformation = definition.transformation
    if definition.partitions is None:
        return substitute_parameters(transformation.code, transformation.parameters)
    window = window or sample_window(definition)
    return substitute_parameters(
        transformation.code, transformation.parameters, **window.placeholders()
    )


def import_transformation(reference: str) -> Callable[..., Any]:
    """Import ``module.path:function``; raise ``PythonImportError`` with a readable reason."""
    module_name, _, attribute = reference.strip().partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module may raise anything while importing
        raise PythonImportError(
            f"cannot import module '{module_name}' of '{reference}': {type(error).__name__}:"
            f" {error} (modules are imported from the project root and installed packages)"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise PythonImportError(f"module '{module_name}' has no function '{attribute}'")
    if not callable(function):
        raise PythonImportError(f"'{reference}' is not callable")
    return function


def function_source(reference: str) -> str:
    """Source text of ``module.path:function`` read from its file, without importing it.

    Loading definitions (and fingerprinting them) must not execute user modules, nor pay for
    their imports (pandas, numpy...) in registry-only commands. The module is located with
    ``importlib.util.find_spec`` and the function found with ``ast`` among its top-level
    statements. When the module is not a Python source file (an extension module) or the name
    is bound in some other way (an import, an assignment), it falls back to importing.

    Raises:
        PythonImportError: the module cannot be found or does not define the function.
    """
    import ast
    import importlib.util
    import inspect

    module_name, _, attribute = reference.strip().partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as error:
        raise PythonImportError(
            f"cannot import module '{module_name}' of '{reference}': {error}"
        ) from None
    if spec is None:
        raise PythonImportError(
            f"cannot import module '{module_name}' of '{reference}': no such module (modules are"
            " imported from the project root and installed packages)"
        )
    origin = spec.origin or ""
    if origin.endswith(".py"):
        try:
            text = open(origin, encoding="utf-8").read()
            tree = ast.parse(text, filename=origin)
        except (OSError, SyntaxError, ValueError) as error:
            raise PythonImportError(f"cannot read module '{module_name}': {error}") from None
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attribute:
                return ast.get_source_segment(text, node) or ""
    # Bound some other way: import to find out.
    function = import_transformation(reference)
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return repr(function)


def ensure_importable_root(root) -> None:
    """Let python transformations import modules that live in the project root."""
    text = str(root)
    if text not in sys.path:
        sys.path.insert(0, text)


def build_into(
    conn,
    definition: FeatureDefinition,
    target: str,
    input_tables: Mapping[str, str],
    *,
    window: BuildWindow | None = None,
    upstream_time_columns: Mapping[str, str] | None = None,
) -> None:
    """Run the transformation and store its result as table ``target`` (replacing it).

    Args:
        conn: DuckDB connection.
        definition: the feature.
        target: ``schema.table`` to create.
        input_tables: upstream feature name -> its live table (python inputs).
        window: a partition run's window: only its rows are computed and kept, upstream
            features are read from ``lookback`` before it (see ``build/partitions.py``).
        upstream_time_columns: upstream table -> its timestamp column (with ``window``).
    """
    quoted = quote_table(target)
    if definition.transformation.transformation_type == TransformationType.SQL:
        sql = render_sql(definition, window)
        if window is not None:
            check_one_select(sql)  # the user's text, before it is parsed and rewritten
            sql = windowed_sql(sql, definition, window, upstream_time_columns or {})
        check_one_select(sql)  # DuckDB's own parser: one SELECT, checked before pasting it in
        execute_one(conn, f"CREATE OR REPLACE TABLE {quoted} AS {sql}")
        return
    function = import_transformation(definition.transformation.code)
    parameters = dict(definition.transformation.parameters)
    if window is None:
        inputs = {name: conn.table(table) for name, table in input_tables.items()}
    else:
        lookback = definition.partitions.lookback_days if definition.partitions else 0
        columns = upstream_time_columns or {}
        inputs = {
            name: conn.table(table).filter(window.condition(columns[table], lookback_days=lookback))
            if table in columns
            else conn.table(table)
            for name, table in input_tables.items()
        }
        parameters.update(partition_start=window.start, partition_end=window.end)
    for source in definition.table_sources:
        inputs[source] = conn.table(source)
    result = function(conn, inputs, **parameters)
    _store(conn, result, quoted, definition)
    if window is not None:  # keep exactly the window's rows, whatever the function returned
        conn.execute(
            f"DELETE FROM {quoted} WHERE NOT ({window.condition(definition.timestamp_column)})"
        )


def _store(conn, result: Any, quoted: str, definition: FeatureDefinition) -> None:
    import duckdb

    if isinstance(result, duckdb.DuckDBPyRelation):
        # Replacement scans (a relation found by its variable name) are off in the sandbox.
        result.create_view("__featurestore_result", replace=True)
        try:
            conn.execute(f"CREATE OR REPLACE TABLE {quoted} AS SELECT * FROM __featurestore_result")
        finally:
            conn.execute("DROP VIEW IF EXISTS __featurestore_result")
        return
    if hasattr(result, "read_all") and not hasattr(result, "num_rows"):
        result = result.read_all()  # a streaming pyarrow RecordBatchReader
    kind = type(result).__module__.split(".")[0]
    if kind not in {"pandas", "polars", "pyarrow"}:
        raise TypeError(
            f"python transformation {definition.transformation.code} returned"
            f" {type(result).__name__}; return a pandas/polars DataFrame, a pyarrow Table or a"
            " DuckDB relation"
        )
    conn.register("__featurestore_result", result)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {quoted} AS SELECT * FROM __featurestore_result")
    finally:
        conn.unregister("__featurestore_result")
