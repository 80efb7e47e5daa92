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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb

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


def locate_module(module_name: str, roots: Iterable[str | Path] | None = None) -> Path | None:
    """The source file of ``module_name`` (``pkg/mod.py`` or ``pkg/mod/__init__.py``) in the
    first of ``roots`` (default: ``sys.path``) that holds it, found by looking at files only:
    nothing is imported, not even the parent packages (``importlib.util.find_spec`` would run
    their ``__init__``). Namespace packages count; zip files and extension modules do not."""
    parts = module_name.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    for root in sys.path if roots is None else roots:
        folder = Path(root or ".").joinpath(*parts[:-1])
        for candidate in (folder / parts[-1] / "__init__.py", folder / f"{parts[-1]}.py"):
            if candidate.is_file():
                return candidate
    return None


def function_source(
    reference: str, roots: Iterable[str | Path] | None = None, *, _depth: int = 0
) -> str:
    """Source text of ``module.path:function`` read from its file, without importing it.

    Loading definitions (and fingerprinting them) must never execute modules, nor pay for
    their imports (pandas, numpy...) in registry-only commands. The module's file is found
    with ``locate_module`` and the name with ``ast`` among its top-level statements: a
    ``def`` or ``class`` (its source), or an assignment or import binding it (that statement;
    a ``from x import name`` is followed into ``x`` when its source can be found).

    Raises:
        PythonImportError: no python source file for the module, or it does not bind the name.
    """
    import ast

    module_name, _, attribute = reference.strip().partition(":")
    origin = locate_module(module_name, roots)
    if origin is None:
        raise PythonImportError(
            f"cannot find module '{module_name}' of '{reference}': no python source file for it"
            " (modules are looked up in the project root and installed packages, never imported"
            " to check them)"
        )
    try:
        text = origin.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(origin))
    except (OSError, SyntaxError, ValueError) as error:
        raise PythonImportError(f"cannot read module '{module_name}': {error}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == attribute:
                return ast.get_source_segment(text, node) or ""
        elif attribute in _bound_names(node):
            if isinstance(node, ast.ImportFrom) and _depth < 8:
                target = _imported_module(node, module_name, origin.name == "__init__.py")
                original = next(a.name for a in node.names if (a.asname or a.name) == attribute)
                try:
                    return function_source(f"{target}:{original}", roots, _depth=_depth + 1)
                except PythonImportError:
                    pass
            return ast.get_source_segment(text, node) or ""
    raise PythonImportError(f"module '{module_name}' has no function '{attribute}'")


def _bound_names(node) -> set[str]:
    import ast

    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _imported_module(node, module_name: str, is_package: bool) -> str:
    """The absolute module name a ``from ... import`` statement reads."""
    if not node.level:
        return node.module or ""
    package = module_name.split(".")
    if not is_package:
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def project_module_issue(reference: str, project_root: Path) -> str | None:
    """Why ``reference`` is not a function in the project's own python sources (None when
    it is): its module must be a source file under ``project_root`` (not the standard
    library, not an installed package) that defines the name. Nothing is imported."""
    module_name, _, _ = reference.strip().partition(":")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return (
            f"module '{module_name}' of '{reference}' is a standard-library module; a python"
            " transformation must be a function in the project's own modules"
        )
    if locate_module(module_name, [project_root]) is None:
        return (
            f"module '{module_name}' of '{reference}' is not a python source file of the project"
            " (looked for it under the project root only; installed packages are refused here)"
        )
    try:
        function_source(reference, [project_root])
    except PythonImportError as error:
        return str(error)
    return None


def ensure_importable_root(root) -> None:
    """Let python transformations import modules that live in the project root."""
    text = str(root)
    if text not in sys.path:
        sys.path.insert(0, text)


def transformation_sql(
    definition: FeatureDefinition,
    window: BuildWindow | None = None,
    upstream_time_columns: Mapping[str, str] | None = None,
) -> str:
    """The SELECT a SQL transformation runs (only ``window``'s rows of a partitioned one),
    checked to be one SELECT by DuckDB's own parser before it is pasted into a statement."""
    sql = render_sql(definition, window)
    if window is not None:
        check_one_select(sql)  # the user's text, before it is parsed and rewritten
        sql = windowed_sql(sql, definition, window, upstream_time_columns or {})
    check_one_select(sql)
    return sql


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
        sql = transformation_sql(definition, window, upstream_time_columns)
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


def require_sources(conn, definition: FeatureDefinition, seen: set[str]) -> None:
    """Raise LookupError naming the first source table of ``definition`` that does not exist;
    ``seen``: the sources already probed in this run (added to).

    A probe binds the name as the transformation will, in constant time; a lookup in
    information_schema lists every table (54 ms a call at 2,000 features: quadratic).
    """
    for source in definition.table_sources:
        if source in seen:
            continue
        try:  # resolved as the SQL will be: a lake schema, else an attached catalog
            conn.execute(f"SELECT * FROM {quote_table(source)} LIMIT 0")
        except duckdb.CatalogException:
            raise LookupError(
                f"source table {source} does not exist in the lake (nor in an attached"
                " DuckDB file); load it before building (it is an external asset owned by"
                " whoever loads the raw data)"
            ) from None
        seen.add(source)
