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

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

PARAMETER_PATTERN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FILE_EXTENSIONS = (".parquet", ".csv", ".csv.gz", ".tsv", ".json", ".ndjson")
_FILE_READERS = {
    "read_parquet",
    "parquet_scan",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
}


class SqlError(ValueError):
    """SQL that cannot be used: it does not parse, is not a SELECT, or misses a parameter."""


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
        raise SqlError(f"SQL does not parse: {first}") from None
    if len(statements) != 1:
        raise SqlError(f"SQL must be exactly one SELECT statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        start = " ".join(sql.split())[:40]
        raise SqlError(f"SQL must be a SELECT query; it starts with '{start}'")
    return statement


@dataclass(frozen=True)
class References:
    """What a query reads: ``schema.table`` names and file paths/globs."""

    tables: frozenset[str]
    files: frozenset[str]


def table_references(sql: str) -> References:
    """The tables and files a SELECT reads, found by parsing (CTE names excluded).

    Unqualified tables resolve to DuckDB's default schema ``main``.

    Example:
        >>> table_references("WITH a AS (SELECT * FROM features.x) SELECT * FROM a").tables
        frozenset({'features.x'})
    """
    tree = parse_select(sql)
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables: set[str] = set()
    files: set[str] = set()
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name:
            continue
        if not table.db and _looks_like_file(name):
            files.add(name)
            continue
        if not table.db and name.lower() in cte_names:
            continue
        tables.add(f"{(table.db or 'main').lower()}.{name.lower()}")
    for func in tree.find_all(exp.Func):
        if _function_name(func) in _FILE_READERS:
            literal = func.find(exp.Literal)
            if literal is not None and literal.is_string:
                files.add(literal.this)
    return References(frozenset(tables), frozenset(files))


def normalize_sql(sql: str) -> str:
    """Canonical text of a query: comments, whitespace, keyword case and formatting removed."""
    tree = parse_select(sql)
    for node in tree.walk():
        node.comments = None
    return tree.sql(dialect="duckdb", normalize=True, comments=False)


def quote_table(table: str) -> str:
    """``schema.table`` -> ``"schema"."table"``."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def quote_identifier(identifier: str) -> str:
    """A DuckDB identifier in double quotes, embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def _looks_like_file(name: str) -> bool:
    lowered = name.lower()
    return "/" in name or "*" in name or lowered.endswith(_FILE_EXTENSIONS)


def _function_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()
