"""The build's DuckDB connection, locked down before any definition's SQL runs.

This is the second of two defences (the first: ``definitions.sql.table_references`` refuses
at load any SQL that reads something undeclared). With it, even SQL that slipped past the
reference check cannot read or write a file outside the lake's data and the declared file
sources, attach another database, install or load an extension, or turn any of that back on:
DuckDB's ``enable_external_access`` is off, ``allowed_directories`` / ``allowed_paths`` name
the exceptions, and ``lock_configuration`` freezes every setting for the connection's life.

Measured on DuckDB 1.5.5: the settings may be changed at run time, after the lake (or a
DuckDB file) is attached; a DuckLake on a SQLite or PostgreSQL catalog keeps working, with
data files written under an allowed directory; ``allowed_directories`` match whole path
components (``/lake`` does not open ``/lakeX`` nor ``/lake/../x``); a glob needs its
directory allowed, single files can be allowed one by one. Python replacement scans (a
DataFrame found by variable name) stop working; ``conn.register`` still does.

The settings are global to the DuckDB instance behind the connection: lock a connection from
its own ``duckdb.connect()``, never the default shared one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import duckdb

_GLOB_CHARACTERS = set("*?[{")


def lock_down(
    conn: duckdb.DuckDBPyConnection,
    *,
    allowed_directories: Iterable[str | os.PathLike] = (),
    allowed_paths: Iterable[str | os.PathLike] = (),
) -> duckdb.DuckDBPyConnection:
    """Turn DuckDB's external access off except for the given directories and files, then
    lock the configuration. Call it after attaching the lake, before running user SQL.

    Args:
        conn: a connection to its own DuckDB instance (``duckdb.connect()``), with every
            catalog it needs already attached.
        allowed_directories: directories whose files may be read and written (the lake's data
            path). The connection's ``temp_directory`` is added, so large sorts can spill.
        allowed_paths: single files that may be read (declared file sources, the catalog file
            of a SQLite-backed lake).

    Returns:
        ``conn``, locked.

    Example:
        >>> conn = duckdb.connect()
        >>> conn.execute("ATTACH 'ducklake:sqlite:.featurestore/lake.sqlite' AS featurestore"
        ...              " (DATA_PATH '.featurestore/lake/')")
        >>> lock_down(conn, allowed_directories=[".featurestore/lake/"],
        ...           allowed_paths=[".featurestore/lake.sqlite"])
        >>> conn.sql("SELECT * FROM read_text('/etc/passwd')")  # PermissionException
    """
    directories = [_absolute(d, directory=True) for d in allowed_directories]
    temp = conn.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    if temp:
        directories.append(_absolute(temp, directory=True))
    paths = [_absolute(p) for p in allowed_paths]
    statements = [
        "SET autoinstall_known_extensions = false",
        "SET allow_community_extensions = false",
    ]
    # Once a secret is looked up (attaching a DuckLake does) this setting can no longer be
    # changed, even to its current value: SQLite-catalog lakes are opened with it off; a
    # PostgreSQL catalog needs the secret storage to attach, so it stays as it was there.
    persistent = conn.execute("SELECT current_setting('allow_persistent_secrets')").fetchone()[0]
    if persistent not in (False, "false"):
        try:
            conn.execute("SET allow_persistent_secrets = false")
        except duckdb.InvalidInputException as error:
            if "secret manager is used" not in str(error):
                raise
    statements += [
        "SET python_enable_replacements = false",
        f"SET allowed_directories = {_list_literal(directories)}",
        f"SET allowed_paths = {_list_literal(paths)}",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]
    for statement in statements:
        conn.execute(statement)
    return conn


class NotOneStatementError(ValueError):
    """User SQL that DuckDB's parser splits into more (or fewer) than one statement."""


def execute_one(conn: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` as exactly one statement, the way DuckDB itself parses it.

    ``conn.execute`` runs every statement of a text, so a definition whose SQL is pasted into
    a larger statement (``CREATE TABLE ... AS <sql>``, ``SELECT count(*) FROM (<sql>)``)
    could close it and append its own (``...); DROP TABLE raw.x; SELECT (1``). Here the text
    is split by DuckDB's parser and refused unless it is one statement, which alone is run.

    Raises:
        NotOneStatementError: naming how many statements DuckDB found.
    """
    try:
        statements = conn.extract_statements(sql)
    except RecursionError:
        raise NotOneStatementError("SQL is nested too deeply to run") from None
    if len(statements) != 1:
        raise NotOneStatementError(
            f"SQL must be exactly one statement where it is run; DuckDB found {len(statements)}"
        )
    return conn.execute(statements[0])


def is_locked_down(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``conn`` has external access off and its configuration locked."""
    rows = conn.execute(
        "SELECT name, value FROM duckdb_settings()"
        " WHERE name IN ('enable_external_access', 'lock_configuration')"
    ).fetchall()
    values = dict(rows)
    return (
        values.get("enable_external_access") == "false"
        and values.get("lock_configuration") == "true"
    )


def file_source_access(sources: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(directories, paths)`` a build must be allowed to read for declared file sources.

    A plain path is allowed as that one file. A glob is allowed through the directory before
    its first wildcard (DuckDB lists that directory to expand it), so ``data/prices/*.parquet``
    opens ``data/prices/``; the reference check still limits the SQL to the declared glob.
    Relative paths are resolved against the working directory, as DuckDB resolves them.
    """
    directories: list[str] = []
    paths: list[str] = []
    for source in sources:
        if is_glob(source):
            directories.append(_absolute(glob_directory(source), directory=True))
        else:
            paths.append(_absolute(source))
    return sorted(set(directories)), sorted(set(paths))


def is_glob(path: str) -> bool:
    return any(character in _GLOB_CHARACTERS for character in path)


def glob_directory(pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard (``""`` for none)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else ""


def _absolute(path: str | os.PathLike, *, directory: bool = False) -> str:
    text = os.path.abspath(os.path.expanduser(os.fspath(path) or "."))
    if directory and not text.endswith(os.sep):
        text += os.sep
    return text


def _list_literal(items: list[str]) -> str:
    quoted = ", ".join("'" + item.replace("'", "''") + "'" for item in items)
    return f"[{quoted}]"
