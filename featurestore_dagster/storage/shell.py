"""DuckDB's own interactive shell on the lake (``featurestore sql`` with no query).

The ``duckdb`` executable of the ``duckdb-cli`` package (the same DuckDB version as the Python
package, so the bundled extensions load) is started with a script that sets the lake up as
``open_lake`` does for a reader: extension autoinstall and autoload off, ``ducklake`` and the
catalog's scanner loaded by path, the lake attached read-only as ``featurestore`` (the default
catalog) and every ``[tool.featurestore] attach`` file attached read-only beside it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.sql import sql_literal
from featurestore_dagster.storage.lake import (
    CATALOG,
    attach_file_statement,
    attach_statement,
    catalog_kind,
    extension_path,
)


def duckdb_executable() -> str | None:
    """The ``duckdb`` shell matching this DuckDB version: the ``duckdb-cli`` package's binary,
    else ``duckdb`` in this interpreter's bin folder, else on ``PATH``; None if none matches."""
    candidates = []
    spec = importlib.util.find_spec("duckdb_cli")
    if spec is not None and spec.origin is not None:
        candidates.append(str(Path(spec.origin).parent / "duckdb"))
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("duckdb", path=search)
    if found:
        candidates.append(found)
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and _version(candidate) == duckdb.__version__:
            return candidate
    return None


def _version(executable: str) -> str | None:
    try:
        done = subprocess.run(
            [executable, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = done.stdout.split()
    return words[0].removeprefix("v") if done.returncode == 0 and words else None


def shell_init_sql(settings: Settings) -> str:
    """The statements that open the lake read-only in a bare DuckDB shell."""
    scanner = f"{catalog_kind(settings.lake_catalog)}_scanner"
    statements = [
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        *(f"LOAD {sql_literal(extension_path(name))}" for name in ("ducklake", scanner)),
        attach_statement(settings, read_only=True),
        f"USE {CATALOG}",
        *(attach_file_statement(name, path) for name, path in settings.attach),
    ]
    return "".join(f"{statement};\n" for statement in statements)


def run_shell(executable: str, settings: Settings) -> int:
    """Run the shell on this terminal until it exits; returns its exit code.

    The script is a private temporary file (a PostgreSQL catalog URL may carry a password, so
    it is never put on the command line) removed when the shell exits. Ctrl-C belongs to the
    shell (it cancels the running query), so this process ignores it meanwhile.
    """
    handle, script = tempfile.mkstemp(prefix="featurestore-shell-", suffix=".sql")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(shell_init_sql(settings))
        process = subprocess.Popen([executable, "-cmd", f".read {script}"])
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return process.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        Path(script).unlink(missing_ok=True)
