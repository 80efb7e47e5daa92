"""``dg scaffold defs featurestore_dagster.FeatureStoreComponent NAME``: a working ``defs.yaml``.

The component reads the project's configured definitions folder (``feature_definitions/`` in
the project root unless configured otherwise), which the ``featurestore`` command and
``FeatureStoreResource`` also use. When that folder holds no definition yet, one
self-contained example feature is written into it, so ``dg check defs`` passes and the asset
can be materialized right away.
"""

from pathlib import Path

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component

EXAMPLE_DEFINITION = """\
# An example feature: replace it with your own (one feature per file, or a `features:` list).
feature_name: example_close
version: 1.0.0
feature_type: raw
data_type: float
status: active
description: Example daily close, inline so that it builds without any source table
owner: data-team
entity_columns: [symbol]
timestamp_column: date
transformation:
  transformation_type: sql
  code: |
    SELECT symbol, date, close AS example_close
    FROM (VALUES
      ('AAA', DATE '2024-01-02', 101.5),
      ('AAA', DATE '2024-01-03', 102.25),
      ('BBB', DATE '2024-01-02', 48.0),
      ('BBB', DATE '2024-01-03', 47.5)
    ) AS prices(symbol, date, close)
validation_rules:
  - rule_type: range
    parameters: {min: 0}
    is_blocking: true
changelog: Initial version
"""


DEFS_YAML = """\
type: {type_name}

# Every attribute is optional: a missing one comes from the project's configuration
# (FEATURESTORE_* environment variables, [tool.featurestore] in pyproject.toml, else files
# under .featurestore/). Relative paths are taken from the project root.
attributes:
  definitions: {definitions}
  # registry_url: postgresql+psycopg://user@host/registry
  # lake_catalog: postgresql://user@host/lake
  # lake_data: .featurestore/lake
"""


class FeatureStoreScaffolder(dg.Scaffolder):
    """Writes ``defs.yaml`` (and an example definition when the project has none)."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml" or request.append:
            scaffold_component(request)
            return
        from featurestore_dagster.definitions.loader import definition_files
        from featurestore_dagster.orchestration.resource import store_settings

        settings = store_settings(start=Path(request.project_root or request.target_path))
        folder = settings.definitions_path
        if not definition_files(folder):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "example_close.yaml").write_text(EXAMPLE_DEFINITION)
        try:
            shown = folder.relative_to(settings.project_root).as_posix()
        except ValueError:  # configured outside the project
            shown = folder.as_posix()
        target = Path(request.target_path)
        target.mkdir(parents=True, exist_ok=True)
        (target / "defs.yaml").write_text(
            DEFS_YAML.format(type_name=request.type_name, definitions=shown)
        )
