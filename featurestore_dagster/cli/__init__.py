"""``featurestore`` command line. Rendering and exit codes live only in this package.

Exit codes: 0 success; 1 the operation ran and found a failure; 2 bad input or usage.
``app`` (in ``app.py``) holds the shared options and helpers; each command group is a module
that registers its commands on it when imported here.
"""

import gc

from featurestore_dagster.cli import build, catalog, consumers, lake, serve, usage, versions  # noqa: F401
from featurestore_dagster.cli.app import app

# A command is one short process that allocates millions of long-lived objects (definitions,
# Dagster specs, events) and frees few: generation-2 collections walk all of them again and
# again for almost nothing. Young collections stay frequent, so cyclic garbage made in loops is
# still reclaimed; the oldest generation is collected a hundred times less often.
CLI_GC_THRESHOLDS = (50_000, 50, 100)


def main() -> None:
    gc.set_threshold(*CLI_GC_THRESHOLDS)
    try:
        app()
    finally:
        # Freeze what is left so interpreter teardown does not run a full collection over it.
        gc.freeze()


__all__ = ["app", "main"]
