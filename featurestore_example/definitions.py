"""The example's code location (``workspace.yaml``, ``[tool.dagster]``): every feature of the
configured definitions folder, exactly as ``featurestore_dagster.definitions_entry`` loads
them, plus the example's model asset ``alpha_model`` and the ``FeatureStoreResource`` it uses.

``featurestore materialize`` builds features only; the model asset is materialized from the
Dagster UI (``dagster dev -w workspace.yaml``) or ``dagster asset materialize -m
featurestore_example.definitions --select alpha_model``.
"""

import dagster as dg

from featurestore_dagster import FeatureStoreResource
from featurestore_dagster.orchestration.definitions import code_location
from featurestore_example.models import alpha_model

defs = dg.Definitions.merge(
    code_location(),
    dg.Definitions(assets=[alpha_model], resources={"feature_store": FeatureStoreResource()}),
)
