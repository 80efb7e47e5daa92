"""The REST API (``featurestore serve``): FastAPI routes over ``FeatureStore``."""

from featurestore_dagster.api.app import API_PREFIX, app_from_environment, create_app

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]
