"""SQL handling with sqlglot (DuckDB dialect): parameters, table references, normalization.

Everything here is pure: text in, text or sets out. Errors are ``SqlError`` with a message fit
for a user; callers attach the file, feature and field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from featurestore_dagster.definitions.functions import ALLOWED_FUNCTIONS

PARAMETER_PATTERN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LAKE_CATALOG = "featurestore"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TOO_DEEP = "SQL is nested too deeply to check (simplify the query)"
# Real transformations are a dozen levels deep; sqlglot (and what reads its trees) recurses
# per level, so a deeper tree is refused here instead of failing somewhere later.
MAX_SQL_DEPTH = 256
# Part of the load cache's key: bump it whenever what table_references refuses changes, so a
# cached answer never lets through SQL that the current rules refuse.
REFERENCE_RULES_VERSION = 2

# Every DuckDB 1.5 function that reads a file or lists a directory: its path argument is a
# reference, allowed only when declared under sources.
FILE_READERS = frozenset(
    """
    read_csv read_csv_auto read_parquet parquet_scan read_json read_json_auto read_ndjson
    read_ndjson_auto read_json_objects read_json_objects_auto read_ndjson_objects
    read_ndjson_objects_auto read_text read_blob read_duckdb glob sniff_csv parquet_metadata
    parquet_schema parquet_file_metadata parquet_kv_metadata parquet_full_metadata
    parquet_bloom_probe
    """.split()
)
_TYPED_READERS: dict[type, str] = {exp.ReadCSV: "read_csv", exp.ReadParquet: "read_parquet"}
# sqlglot parses these names into typed nodes; none is a value function in DuckDB.
_TYPED_REFUSED = tuple(
    getattr(exp, name)
    for name in ("ToFile", "NextValueFor", "JSONTable", "XMLTable", "Secret", "GenerateTable")
    if hasattr(exp, name)
)
# Statements and clauses that are not part of a read-only SELECT.
_REFUSED_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Command Set Pragma Attach Detach Copy Use Insert Update Delete Drop Create Alter Merge"
        " Transaction Commit Rollback Describe Show Summarize Install Export Execute Declare"
        " Analyze Kill Grant Revoke TruncateTable LoadData Put Get Cache Uncache Refresh Into"
    ).split()
    if hasattr(exp, name)
)
_TABLE_FUNCTIONS = frozenset({"query_table", "range", "generate_series", "unnest"})
_TYPED_TABLE_FUNCTIONS = (exp.ReadCSV, exp.ReadParquet, exp.GenerateSeries, exp.Unnest, exp.Explode)
_OPTION_NODES = tuple(getattr(exp, n) for n in ("EQ", "PropertyEQ", "Kwarg") if hasattr(exp, n))


class SqlError(ValueError):
    """SQL that cannot be used: it does not parse, is not one SELECT, calls something refused
    or misses a parameter.

    ``line`` and ``column`` (1-based, counted inside the SQL) say where parsing failed.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


def sql_literal(value: Any) -> str:
    """Render a validated parameter value as a DuckDB literal (never raw text)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SqlError(f"parameter value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return ", ".join(sql_literal(item) for item in value)
    if isinstance(value, dict):
        return sql_literal(json.dumps(value, sort_keys=True))
    raise SqlError(f"parameter value {value!r} cannot be used in SQL")


def template_parameters(sql: str) -> set[str]:
    """Names of the ``{{ name }}`` placeholders in ``sql``."""
    return set(PARAMETER_PATTERN.findall(sql))


def substitute_parameters(sql: str, parameters: dict[str, Any], **reserved: str) -> str:
    """Replace each ``{{ name }}`` by the literal of ``parameters[name]``.

    ``reserved`` placeholders (such as ``table`` for custom checks) are replaced by their text
    as-is; the caller guarantees they are quoted identifiers.

    Example:
        >>> substitute_parameters("SELECT avg(x) OVER (ROWS {{ n }} PRECEDING)", {"n": 13})
        'SELECT avg(x) OVER (ROWS 13 PRECEDING)'
    """
    missing = sorted(template_parameters(sql) - set(parameters) - set(reserved))
    if missing:
        names = ", ".join(missing)
        raise SqlError(
            f"SQL uses {{{{ {missing[0]} }}}} but transformation.parameters has no {names}"
        )

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in reserved:
            return reserved[name]
        return sql_literal(parameters[name])

    return PARAMETER_PATTERN.sub(replace, sql)


def parse_select(sql: str) -> exp.Expression:
    """Parse one DuckDB query; refuse anything that is not a single SELECT (or set operation)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except SqlglotError as error:
        first = str(error).splitlines()[0]
        where = (getattr(error, "errors", None) or [{}])[0]
        raise SqlError(
            f"SQL does not parse: {first}", line=where.get("line"), column=where.get("col")
        ) from None
    except RecursionError:
        raise SqlError(_TOO_DEEP) from None
    if len(statements) != 1:
        raise SqlError(f"SQL must be exactly one SELECT statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        start = " ".join(sql.split())[:40]
        raise SqlError(f"SQL must be a SELECT query; it starts with '{start}'")
    return statement


def check_one_select(sql: str) -> None:
    """Refuse ``sql`` unless DuckDB's own parser sees exactly one SELECT in it.

    sqlglot and DuckDB are different parsers: a text that sqlglot reads as one query but DuckDB
    splits into two (a comment or string quirk) must never reach ``conn.execute``. Parsing
    without binding takes microseconds and touches no database.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        text = str(error).strip()
        if "expression depth" in text:  # its hint (SET max_expression_depth) is not ours
            raise SqlError(_TOO_DEEP) from None
        line, column = _duckdb_position(text)
        if line is None:  # "at end of input": sqlglot knows where it stopped
            try:
                parse_select(sql)
            except SqlError as located:
                if located.line is not None:
                    raise located from None
        first = text.splitlines()[0]
        raise SqlError(f"SQL does not parse: {first}", line=line, column=column) from None
    except RecursionError:
        raise SqlError(_TOO_DEEP) from None
    if len(statements) != 1:
        hint = ""
        if any(s.type == duckdb.StatementType.CREATE and not s.query for s in statements):
            hint = " (a PIVOT without an IN list creates a type first: list the pivoted values)"
        raise SqlError(f"SQL must be exactly one SELECT statement, found {len(statements)}{hint}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SqlError(f"SQL must be one SELECT statement; {kind.name} is not allowed")


_DUCKDB_LINE = re.compile(r"^(LINE (\d+): )(.*)\n( *)\^", re.MULTILINE)


def _duckdb_position(text: str) -> tuple[int | None, int | None]:
    """(line, column) of a DuckDB parser error's ``LINE n:`` excerpt and caret."""
    match = _DUCKDB_LINE.search(text)
    if match is None:
        return None, None
    column = len(match.group(4)) - len(match.group(1)) + 1
    return int(match.group(2)), (
        column if column > 0 and not match.group(3).startswith("...") else None
    )


@dataclass(frozen=True)
class References:
    """What a query reads: ``schema.table`` names and file paths/globs."""

    tables: frozenset[str]
    files: frozenset[str]


def table_references(sql: str) -> References:
    """The tables and files a SELECT reads, found by walking its whole sqlglot tree.

    Every ``FROM`` table, every file reader (``read_csv``, ``read_text``, ``glob``, a quoted
    path in ``FROM``...) and ``query_table`` counts as a reference; unqualified tables resolve
    to DuckDB's default schema ``main``, CTE names are excluded. Anything else that could read
    or change state outside the query's values is refused with its name: statements other
    than SELECT (``SET``, ``PRAGMA``, ``ATTACH``, ``COPY``...) anywhere in the tree, table
    functions, catalog and settings functions, and every function not in ``ALLOWED_FUNCTIONS``.

    Raises:
        SqlError: the SQL does not parse, is not exactly one SELECT, or uses something refused.

    Example:
        >>> table_references("WITH a AS (SELECT * FROM features.x) SELECT * FROM a").tables
        frozenset({'features.x'})
        >>> table_references("SELECT * FROM read_text('/etc/passwd')").files
        frozenset({'/etc/passwd'})
    """
    check_one_select(sql)
    tree = parse_select(sql)
    try:
        return _walk(tree)
    except RecursionError:
        raise SqlError(_TOO_DEEP) from None


def _walk(tree: exp.Expression) -> References:
    tables: set[str] = set()
    files: set[str] = set()
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    depths = {id(tree): 0}
    for node in tree.walk(bfs=True):
        if node is not tree:
            depth = depths[id(node)] = depths[id(node.parent)] + 1
            if depth > MAX_SQL_DEPTH:
                raise SqlError(
                    f"SQL is nested more than {MAX_SQL_DEPTH} levels deep; simplify the query"
                )
        if isinstance(node, _REFUSED_NODES):
            kind = node.key.upper()
            raise SqlError(f"SQL must be one SELECT: {kind} is not allowed anywhere in it")
        if isinstance(node, exp.Table):
            reference = _table_reference(node, cte_names)
            if reference is None:
                continue
            (files if reference[0] == "file" else tables).add(reference[1])
        elif isinstance(node, exp.Func):
            kind, names = _function_reference(node)
            (files if kind == "file" else tables).update(names)
    return References(frozenset(tables), frozenset(files))


def _table_reference(table: exp.Table, cte_names: set[str]) -> tuple[str, str] | None:
    if isinstance(table.this, exp.Func):
        _check_table_function(table.this)
        return None  # its reads are collected from the exp.Func node itself
    if not isinstance(table.this, exp.Identifier):
        return None
    name = table.name
    if not table.db and _looks_like_file(name):
        return "file", name
    if not table.db and name.lower() in cte_names:
        return None
    catalog = table.catalog.lower()
    schema = (table.db or "main").lower()
    if catalog and catalog != LAKE_CATALOG:
        # Another attached database: never a declared input.
        return "table", f"{catalog}.{schema}.{name.lower()}"
    return "table", f"{schema}.{name.lower()}"


def _check_table_function(func: exp.Func) -> None:
    """In ``FROM``, only row generators, file readers and ``query_table`` are allowed: a name
    such as ``histogram`` is an aggregate in a select list but reads a table by name here."""
    if isinstance(func, exp.Anonymous):
        name = str(func.name).lower()
        if name in FILE_READERS or name in _TABLE_FUNCTIONS:
            return
    elif isinstance(func, _TYPED_TABLE_FUNCTIONS):
        return
    else:
        name = func.sql_name().lower()
    raise SqlError(
        f"SQL reads from table function {name}(), which a definition may not use: only"
        " range, generate_series, unnest, query_table and file readers on declared sources"
    )


def _function_reference(func: exp.Func) -> tuple[str, set[str]]:
    """``("file"|"table", names)`` read by one function call; refuse what is not allowed."""
    if type(func) in _TYPED_READERS:
        return "file", _literal_paths(func, _TYPED_READERS[type(func)])
    if isinstance(func, _TYPED_REFUSED):
        raise SqlError(_refused(func.sql_name().lower()))
    if not isinstance(func, exp.Anonymous):
        return "table", set()  # a function sqlglot knows by type: scalar or aggregate
    name = str(func.name).lower()
    if name in FILE_READERS:
        return "file", _literal_paths(func, name)
    if name == "query_table":
        return "table", {_qualify(t) for t in _literal_paths(func, name)}
    if name in ALLOWED_FUNCTIONS:
        return "table", set()
    raise SqlError(_refused(name))


def _literal_paths(func: exp.Func, name: str) -> set[str]:
    positional = [
        arg
        for key, value in func.args.items()
        for arg in (value if isinstance(value, list) else [value])
        if isinstance(arg, exp.Expression) and not isinstance(arg, _OPTION_NODES)
    ]
    first = positional[0] if positional else None
    items = first.expressions if isinstance(first, exp.Array) else [first]
    if len(positional) != 1 or not all(_is_string(item) for item in items) or not items:
        raise SqlError(
            f"{name}() must be given its path as a string literal (or a list of them), so the"
            " file it reads can be checked against sources"
        )
    return {item.this for item in items}


def _is_string(node: Any) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _qualify(table: str) -> str:
    parts = table.lower().split(".")
    if len(parts) == 3 and parts[0] == LAKE_CATALOG:
        parts = parts[1:]
    return ".".join(parts) if len(parts) > 1 else f"main.{parts[0]}"


def _refused(name: str) -> str:
    return (
        f"SQL calls {name}(), which a definition may not use: only scalar, aggregate and"
        " window functions, and file readers (read_csv, read_parquet, ...) on declared sources"
    )


def normalize_sql(sql: str) -> str:
    """Canonical text of a query: comments, whitespace, keyword case and formatting removed."""
    tree = parse_select(sql)
    try:
        for node in tree.walk():
            node.comments = None
        return tree.sql(dialect="duckdb", normalize=True, comments=False)
    except RecursionError:
        raise SqlError(_TOO_DEEP) from None


def quote_table(table: str) -> str:
    """``schema.table`` -> ``"schema"."table"``."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def quote_identifier(identifier: str) -> str:
    """A DuckDB identifier in double quotes, embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def _looks_like_file(name: str) -> bool:
    # DuckDB reads a quoted path in FROM as a file ('data/x.parquet'); anything that is not a
    # plain identifier is treated as one, so it must be declared like any other file.
    return not _PLAIN_NAME.match(name)
