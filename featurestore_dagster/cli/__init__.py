"""``featurestore`` command line. Rendering and exit codes live only in this package.

Exit codes: 0 success; 1 the operation ran and found a failure; 2 bad input or usage.
``app`` (in ``app.py``) holds the shared options and helpers; each command group is a module
that registers its commands on it when imported here.
"""

from featurestore_dagster.cli import build, catalog, serve, usage, versions  # noqa: F401
from featurestore_dagster.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
