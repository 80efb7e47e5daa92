"""Property-based fuzzing of the OpenAPI document (schemathesis, fixed seed, bounded examples
per operation, valid and invalid inputs) against a real server: no 5xx, responses as
documented, and the definitions folder unchanged afterwards."""

from __future__ import annotations

import tempfile

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from featurestore_dagster.api import create_app
from featurestore_dagster.store import FeatureStore
from tests.api.conftest import close_price, definitions_state, derived, make_project, serving

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def openapi_document() -> dict:
    """The document, built in this process (it does not depend on the project's data)."""
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(definitions_path=folder, registry_url="sqlite://")
        return create_app(store).openapi()


DOCUMENT = openapi_document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("fuzz"))
    with serving(project) as server:
        with server.client() as http:
            http.post("/features", json=close_price("fz_close")).raise_for_status()
            http.post("/features", json=derived("fz_double", "fz_close")).raise_for_status()
        yield server


def test_served_document_is_the_one_fuzzed(fuzz_server):
    assert httpx.get(f"{fuzz_server.url}/openapi.json").json() == DOCUMENT
    assert len(OPERATIONS) >= 17


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_fuzz_operation(fuzz_server, operation):
    folder = fuzz_server.project / "feature_definitions"
    before = definitions_state(folder)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(modes[1])
    session = httpx.Client(base_url=fuzz_server.url, timeout=30)
    calls = []

    @seed(20261201)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(strategy)
    def fuzz(case):
        response = case.call_and_validate(base_url=fuzz_server.url, checks=CHECKS)
        calls.append(response.status_code)

    try:
        fuzz()
    finally:
        session.close()
    assert calls
    assert definitions_state(folder) == before
    assert "Traceback" not in fuzz_server.output()
