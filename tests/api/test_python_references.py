"""Python references in posted definitions are checked from source, never imported: a module
outside the project's own sources is a 422 naming ``transformation.code``, and a module whose
import has a side effect (it writes a file) is not imported, inside the project or outside."""

from __future__ import annotations

import pytest

from tests.api.conftest import close_price, definitions_state, make_project, server_env, serving

SIDE_EFFECT = (
    "from pathlib import Path\n"
    "Path({marker!r}).write_text('imported')\n"
    "\n\n"
    "def build(conn, inputs):\n"
    "    return inputs['raw.prices'].project('symbol, date, close AS {name}')\n"
)


def python_feature(name: str, code: str) -> dict:
    payload = close_price(name)
    payload["transformation"] = {"transformation_type": "python", "code": code}
    return payload


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server whose ``PYTHONPATH`` holds a module outside the project; the project holds a
    package whose ``__init__`` writes a file when imported."""
    base = tmp_path_factory.mktemp("python_refs")
    outside = base / "outside"
    outside.mkdir()
    markers = {"outside": base / "outside-imported", "package": base / "package-imported"}
    (outside / "pr_outside.py").write_text(
        SIDE_EFFECT.format(marker=str(markers["outside"]), name="pr_out")
    )
    (outside / "pr_outside_pkg").mkdir()
    (outside / "pr_outside_pkg" / "__init__.py").write_text(
        SIDE_EFFECT.format(marker=str(markers["outside"]), name="pr_out")
    )
    (outside / "pr_outside_pkg" / "mod.py").write_text("def build(conn, inputs):\n    return 1\n")
    project = make_project(base / "project")
    package = project / "pr_transforms"
    package.mkdir()
    (package / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(markers['package'])!r}).write_text('imported')\n"
    )
    (package / "prices.py").write_text(
        "def build(conn, inputs):\n"
        "    return inputs['raw.prices'].project('symbol, date, close AS pr_inside')\n"
    )
    env = server_env(PYTHONPATH=str(outside))
    with serving(project, env=env) as server, server.client() as http:
        http.post("/features", json=close_price("pr_sql")).raise_for_status()
        yield server, http, project / "feature_definitions", markers


@pytest.mark.parametrize(
    "code, reason",
    [
        ("pr_outside:build", "not a python source file of the project"),
        ("pr_outside_pkg.mod:build", "not a python source file of the project"),
        ("antigravity:geohash", "standard-library module"),
        ("os:system", "standard-library module"),
        ("httpx:get", "not a python source file of the project"),
        ("pr_transforms.prices:missing", "has no function 'missing'"),
    ],
    ids=[
        "outside-with-side-effect",
        "outside-package",
        "stdlib-with-side-effect",
        "stdlib",
        "installed",
        "no-def",
    ],
)
def test_reference_outside_the_project_is_a_422_naming_the_field(world, code, reason):
    server, http, folder, markers = world
    before = definitions_state(folder)
    answer = http.post("/features", json=python_feature("pr_out", code))
    assert answer.status_code == 422, answer.text
    (item,) = answer.json()["detail"]
    assert item["loc"] == ["body", "transformation", "code"]
    assert item["field"] == "transformation.code" and item["feature"] == "pr_out"
    assert reason in item["msg"] and code.split(":")[0] in item["msg"]
    assert not markers["outside"].exists()
    assert definitions_state(folder) == before
    assert http.get("/features/pr_out").status_code == 404


def test_changing_a_transformation_to_an_outside_module_is_refused(world):
    server, http, folder, markers = world
    before = definitions_state(folder)
    patch = {"transformation": {"transformation_type": "python", "code": "pr_outside:build"}}
    answer = http.put("/features/pr_sql", json=patch)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "transformation", "code"]
    answer = http.post("/features/pr_sql/versions", json=patch)
    assert answer.status_code == 422, answer.text
    assert not markers["outside"].exists()
    assert definitions_state(folder) == before
    assert http.get("/features/pr_sql").json()["version"] == "1.0.0"


def test_project_function_is_accepted_without_importing_its_package(world):
    server, http, folder, markers = world
    answer = http.post("/features", json=python_feature("pr_inside", "pr_transforms.prices:build"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["transformation"]["code"] == "pr_transforms.prices:build"
    assert (folder / "pr_inside.yaml").exists()
    # Reads load the graph again (fingerprints hash the function's source): still no import.
    assert http.get("/features/pr_inside").status_code == 200
    assert http.get("/plan").status_code == 200
    assert not markers["package"].exists()
    assert not markers["outside"].exists()
