"""Code location module for ``workspace.yaml`` / ``dagster dev -m``.

``defs`` is built from the configured definitions folder (``FEATURESTORE_DEFINITIONS``,
``[tool.featurestore]`` in pyproject.toml, or ``feature_definitions/``).
"""

from featurestore_dagster.orchestration.definitions import code_location

defs = code_location()
