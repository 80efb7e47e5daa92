"""Binding SQL transformations without running them.

DuckDB describes a query over empty tables of the right types: each SQL feature is bound, in
build order, against the output schema of its upstream features (as bound here, or the live
table of a python feature) and the actual schema of its table sources. A misnamed output
column, an unknown input column or a wrong output type is then a definition error naming the
file, the feature, the field and both names, before anything is built.

A feature whose inputs are not all known (a source table not loaded yet, a file source, a
python upstream that was never built) is not bound, and neither is what depends on it: binding
only ever reports what is certainly wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import duckdb

from featurestore_dagster.build.sandbox import NotOneStatementError, execute_one, lock_down
from featurestore_dagster.build.transformations import render_sql
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import (
    DataType,
    FeatureDefinition,
    TransformationType,
)
from featurestore_dagster.definitions.sql import SqlError, quote_identifier, quote_table
from featurestore_dagster.errors import DefinitionIssue

Schema = list[tuple[str, str]]  # (column, DuckDB type), in order

_INTEGER = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"}
_INTEGER |= {"UINTEGER", "UBIGINT", "UHUGEINT"}
_ACCEPTED = {
    DataType.FLOAT: lambda t: t in {"FLOAT", "DOUBLE", "REAL"} or t.startswith("DECIMAL"),
    DataType.INTEGER: lambda t: t in _INTEGER,
    DataType.STRING: lambda t: t == "VARCHAR",
    DataType.BOOLEAN: lambda t: t == "BOOLEAN",
    DataType.TIMESTAMP: lambda t: t.startswith("TIMESTAMP") or t == "DATE",
}
_WORDS = {
    DataType.FLOAT: "a floating or decimal type",
    DataType.INTEGER: "an integer type",
    DataType.STRING: "VARCHAR",
    DataType.BOOLEAN: "BOOLEAN",
    DataType.TIMESTAMP: "TIMESTAMP or DATE",
}
_UNKNOWN_COLUMN = re.compile(r'Referenced column "([^"]+)" not found')
_CANDIDATES = re.compile(r"Candidate bindings: (.*)")


def table_schemas(conn: duckdb.DuckDBPyConnection) -> dict[str, Schema]:
    """Every table the connection sees, ``schema.table`` (lower case) -> its columns."""
    rows = conn.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_catalog = current_database() ORDER BY table_schema, table_name,"
        " ordinal_position"
    ).fetchall()
    schemas: dict[str, Schema] = {}
    for schema, table, column, kind in rows:
        schemas.setdefault(f"{schema}.{table}".lower(), []).append((column, kind))
    return schemas


def bind_graph(
    graph: FeatureGraph, tables: Mapping[str, Schema], cache: dict | None = None
) -> list[DefinitionIssue]:
    """Bind every compiled SQL feature of ``graph``; the problems found, in build order.

    Args:
        graph: the validated definitions.
        tables: ``schema.table`` (lower case) -> columns of the tables that exist now (the
            sources; the live feature tables stand in for python features).
        cache: bound output schemas by (SQL, input schemas, declared output); filled here, so
            a later plan binds only what changed.
    """
    conn = lock_down(duckdb.connect())  # user SQL is bound here: same sandbox as a build
    try:
        return _Binder(conn, graph, tables, {} if cache is None else cache).run()
    finally:
        conn.close()


class _Binder:
    def __init__(self, conn, graph: FeatureGraph, tables: Mapping[str, Schema], cache: dict):
        self.conn = conn
        self.graph = graph
        self.tables = tables
        self.cache = cache
        self.used: set[str] = set()
        self.bound: dict[str, Schema | None] = {}  # feature -> output schema (None: unknown)
        self.created: set[str] = set()
        self.schemas: set[str] = set()

    def run(self) -> list[DefinitionIssue]:
        issues: list[DefinitionIssue] = []
        for definition in self.graph.compiled:
            schema, found = self._bind(definition)
            self.bound[definition.feature_name] = schema
            issues.extend(found)
        for key in set(self.cache) - self.used:  # keep what this graph binds, nothing older
            del self.cache[key]
        return issues

    def _bind(self, d: FeatureDefinition) -> tuple[Schema | None, list[DefinitionIssue]]:
        live = self.tables.get(d.table_name.lower())
        if d.transformation.transformation_type != TransformationType.SQL or d.file_sources:
            return live, []
        inputs: dict[str, Schema] = {}
        for parent in d.upstream_features:
            schema = self.bound.get(parent)
            if schema is None:
                return None, []
            inputs[self.graph[parent].table_name] = schema
        for source in d.table_sources:
            schema = self.tables.get(source.lower())
            if schema is None:
                return None, []
            inputs[source] = schema
        try:
            sql = render_sql(d)
        except SqlError:
            return None, []  # the graph already reported it
        key = _digest([sql, sorted(inputs.items()), d.feature_name, d.key_columns])
        self.used.add(key)
        if key in self.cache:
            output = [tuple(column) for column in self.cache[key]]
        else:
            for table, schema in inputs.items():
                self._create(table, schema)
            try:
                rows = execute_one(self.conn, f"DESCRIBE {sql}").fetchall()
            except NotOneStatementError:
                return None, []  # the graph's reference check reports it
            except duckdb.Error as error:
                return None, [self._input_issue(d, error, inputs)]
            output = [(row[0], row[1]) for row in rows]
        issues = self._output_issues(d, output)
        if not issues:
            self.cache[key] = [list(column) for column in output]
        return (None if issues else output), issues

    def _create(self, table: str, schema: Schema) -> None:
        if table.lower() in self.created:
            return
        namespace = table.split(".")[0]
        if namespace not in self.schemas:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(namespace)}")
            self.schemas.add(namespace)
        columns = ", ".join(f"{quote_identifier(c)} {kind}" for c, kind in schema)
        self.conn.execute(f"CREATE TABLE {quote_table(table)} ({columns})")
        self.created.add(table.lower())

    def _input_issue(self, d: FeatureDefinition, error: duckdb.Error, inputs) -> DefinitionIssue:
        text = str(error)
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        unknown = _UNKNOWN_COLUMN.search(text)
        if unknown:
            column = unknown.group(1)
            described = "; ".join(
                f"{table}: {', '.join(c for c, _ in schema)}" for table, schema in inputs.items()
            )
            message = f"SQL reads column '{column}', which none of its inputs has ({described})"
            candidates = _CANDIDATES.search(text)
            if candidates:
                names = [
                    n.strip().strip('"').split(".")[-1] for n in candidates.group(1).split(",")
                ]
                message += f"; did you mean '{names[0]}'?"
            return _issue(d, "transformation.code", message)
        reason = first.removeprefix("Binder Error: ")
        return _issue(
            d, "transformation.code", f"SQL does not bind against the declared inputs: {reason}"
        )

    def _output_issues(self, d: FeatureDefinition, output: Schema) -> list[DefinitionIssue]:
        expected = [*d.entity_columns, d.timestamp_column, d.feature_name]
        found = [c for c, _ in output]
        lower_found = {c.lower() for c in found}
        lower_expected = {c.lower() for c in expected}
        missing = [c for c in expected if c.lower() not in lower_found]
        extra = [c for c in found if c.lower() not in lower_expected]
        if missing or extra or len(found) != len(expected):
            columns = f"expected columns {', '.join(expected)}; found {', '.join(found)}"
            if len(missing) == 1 and len(extra) == 1:
                message = f"output column '{extra[0]}' should be named '{missing[0]}' ({columns})"
            else:
                message = f"the SQL's output does not match the definition ({columns})"
            return [_issue(d, "transformation.code", message)]
        kind = next(t for c, t in output if c.lower() == d.feature_name.lower())
        if not _ACCEPTED[d.data_type](kind.upper()):
            return [
                _issue(
                    d,
                    "data_type",
                    f"output column '{d.feature_name}' is {kind}, but data_type is"
                    f" {d.data_type.value} ({_WORDS[d.data_type]}); cast it in the SQL or change"
                    " data_type",
                )
            ]
        return []


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


def _issue(d: FeatureDefinition, field: str, message: str) -> DefinitionIssue:
    return DefinitionIssue(message, file=d.path, feature=d.feature_name, field=field)


def bind_definitions(graph: FeatureGraph, settings) -> list[DefinitionIssue]:
    """``bind_graph`` against the tables of the configured lake (and attached DuckDB files),
    opened read-only (none when the lake does not exist yet or cannot be opened now: then only
    SQL over upstream features and inline data is bound)."""
    from featurestore_dagster.errors import LakeError
    from featurestore_dagster.storage.lake import lake_exists, open_lake

    tables: dict[str, Schema] = {}
    if lake_exists(settings):
        try:
            conn = open_lake(settings, read_only=True)
        except (duckdb.Error, LakeError):
            conn = None  # the catalog cannot be reached now: bind what needs no source
        if conn is not None:
            try:
                tables = table_schemas(conn)
                for name, _ in settings.attach:  # source `name.table` reads name.main.table
                    tables.update(_attached_schemas(conn, name))
            finally:
                conn.close()
    cache_path = Path(settings.cache_path).parent / "bound_sql.json"
    cache = _read_cache(cache_path)
    known = dict(cache)
    issues = bind_graph(graph, tables, cache)
    if cache != known:
        _write_cache(cache_path, cache)
    return issues


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bound-")
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs time


def _attached_schemas(conn: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, Schema]:
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name,"
        " ordinal_position",
        [catalog],
    ).fetchall()
    schemas: dict[str, Schema] = {}
    for table, column, kind in rows:
        schemas.setdefault(f"{catalog}.{table}".lower(), []).append((column, kind))
    return schemas
