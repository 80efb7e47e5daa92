"""``python -m featurestore_dagster.cli``."""

from featurestore_dagster.cli import main

main()
