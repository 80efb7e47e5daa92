"""FeatureStoreComponent in a real ``dg`` project, FeatureStoreResource in a user's model asset.

One project (module scope) goes through the whole story with the real ``dg`` CLI: scaffold,
``dg check yaml`` on a typo, ``dg check defs``, ``dg list defs``, then one ``dg launch`` where a
blocking check rejects one feature: the user's model asset on the healthy feature still runs
and records its usage with the run id, the one on the rejected feature does not, and the run
fails as a failed blocking check should.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

import featurestore_dagster
from featurestore_dagster import FeatureStoreComponent, FeatureStoreResource, feature_asset_key
from featurestore_dagster.errors import UnknownFeatureError
from tests.conftest import DefinitionsFolder, base_definition

BIN = Path(sys.executable).parent
INLINE_SQL = (
    "SELECT symbol, date, close AS close_price"
    " FROM (VALUES ('A', DATE '2024-01-02', 1.0)) AS prices(symbol, date, close)"
)

PYPROJECT = """\
[project]
name = "myproj"
version = "0.1.0"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "myproj"
"""

MODELS = """\
import dagster as dg
from featurestore_dagster import FeatureStoreResource, feature_asset_key


@dg.asset(deps=[feature_asset_key("example_close")])
def healthy_model(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource):
    feature_store.record_model_usage(
        used_by_model="healthy_model", model_version="1.0.0", environment="dev",
        features={"example_close": 0.7},
    )


@dg.asset(deps=[feature_asset_key("bad_close")])
def blocked_model(feature_store: FeatureStoreResource):
    feature_store.record_model_usage(
        used_by_model="blocked_model", model_version="1.0.0", environment="dev",
        features={"bad_close": 0.3},
    )
"""

RESOURCES = """\
import dagster as dg
from featurestore_dagster import FeatureStoreResource


@dg.definitions
def resources():
    return dg.Definitions(resources={"feature_store": FeatureStoreResource()})
"""


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A flat ``dg`` project with the scaffolded component and two user assets."""
    root = tmp_path_factory.mktemp("dgproject")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "myproj" / "defs").mkdir(parents=True)
    (root / "myproj" / "__init__.py").write_text("")
    (root / "myproj" / "defs" / "__init__.py").write_text("")
    (root / "myproj" / "definitions.py").write_text(
        textwrap.dedent("""\
            from pathlib import Path

            import dagster as dg


            @dg.definitions
            def defs():
                return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        """)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURESTORE_", "DAGSTER"))}
    env["DAGSTER_HOME"] = str(root / "dagster_home")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    (root / "dagster_home").mkdir()
    return root, env


@pytest.fixture(scope="module")
def scaffolded(project):
    root, env = project
    result = run(
        "dg", "scaffold", "defs", "featurestore_dagster.FeatureStoreComponent", "features",
        cwd=root, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root, env


def test_dg_lists_the_component(project):
    root, env = project
    result = run("dg", "list", "components", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    keys = [entry["key"] for entry in json.loads(result.stdout)["items"]]
    assert "featurestore_dagster.FeatureStoreComponent" in keys


def test_scaffold_writes_a_defs_yaml_and_an_example(scaffolded):
    root, _ = scaffolded
    document = yaml.safe_load((root / "myproj/defs/features/defs.yaml").read_text())
    assert document == {
        "type": "featurestore_dagster.FeatureStoreComponent",
        "attributes": {"definitions": "feature_definitions"},
    }
    example = yaml.safe_load((root / "feature_definitions/example_close.yaml").read_text())
    assert example["feature_name"] == "example_close"


def test_dg_check_yaml_names_the_misspelled_attribute_and_its_line(scaffolded):
    root, env = scaffolded
    defs_yaml = root / "myproj/defs/features/defs.yaml"
    good = defs_yaml.read_text()
    defs_yaml.write_text(good.replace("  definitions:", "  definitons:"))
    try:
        result = run("dg", "check", "yaml", cwd=root, env=env)
    finally:
        defs_yaml.write_text(good)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    line = 1 + good.splitlines().index("  definitions: feature_definitions")
    assert f"defs.yaml:{line}" in output
    assert "'definitons' was unexpected" in output


def test_model_assets_run_past_a_rejected_feature_and_record_the_run(scaffolded):
    """dg check defs, dg list defs, then one real run through dg launch."""
    root, env = scaffolded
    example = (root / "feature_definitions/example_close.yaml").read_text()
    (root / "feature_definitions/bad_close.yaml").write_text(
        example.replace("example_close", "bad_close").replace("{min: 0}", "{min: 0, max: 100}")
    )
    (root / "myproj/defs/models.py").write_text(MODELS)
    (root / "myproj/defs/resources.py").write_text(RESOURCES)

    result = run("dg", "check", "defs", cwd=root, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    result = run("dg", "list", "defs", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    deps = {a["asset_key"]: a["dependency_keys"] for a in listed["assets"]}
    assert deps["healthy_model"] == ["features/example_close"]  # one lineage graph
    assert deps["blocked_model"] == ["features/bad_close"]
    assert "features/example_close:range" in {c["key"] for c in listed["asset_checks"]}

    result = run("featurestore", "apply", cwd=root, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    result = run("dg", "launch", "--assets", "*", cwd=root, env=env)
    assert result.returncode == 1, result.stdout + result.stderr  # a blocking check failed

    store = featurestore_dagster.FeatureStore(
        definitions_path=root / "feature_definitions",
        registry_url=f"sqlite:///{root / '.featurestore/registry.db'}",
    )
    (usage,) = store.get_feature_usage_history("example_close")
    assert (usage.used_by_model, usage.feature_importance) == ("healthy_model", 0.7)
    assert store.get_feature_usage_history("bad_close") == []  # its model never ran

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        dagster_run = instance.get_run_by_id(usage.execution_id)
        assert dagster_run is not None and dagster_run.status == dg.DagsterRunStatus.FAILURE
        materialized = {
            event.asset_key.to_user_string()
            for event in instance.get_records_for_run(
                usage.execution_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            for event in [event.event_log_entry.dagster_event]
        }
    finally:
        instance.dispose()
    assert materialized == {"features/example_close", "healthy_model"}


# --- in process --------------------------------------------------------------------------------


def test_component_builds_from_its_attributes_over_the_configuration(tmp_path):
    """Relative paths are taken from the project root; attributes beat [tool.featurestore]."""
    folder = DefinitionsFolder(tmp_path / "elsewhere")
    folder.write(base_definition(sources=[], transformation={"code": INLINE_SQL}))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.featurestore]\nregistry_url = "sqlite:///ignored.db"\n'
    )
    component = FeatureStoreComponent.from_attributes_dict(
        attributes={"definitions": "elsewhere/feature_definitions", "registry_url": "sqlite://"}
    )
    context = dataclasses.replace(dg.ComponentTree.for_test().load_context, project_root=tmp_path)
    settings = component.settings(context)
    assert settings.definitions_path == tmp_path / "elsewhere/feature_definitions"
    assert settings.registry_url == "sqlite://"
    defs = component.build_defs(context)
    assert dg.AssetKey(["features", "close_price"]) in {
        key for assets in defs.assets for key in getattr(assets, "keys", [])
    }


def test_component_refuses_an_unknown_attribute():
    with pytest.raises(Exception, match="definitons"):
        FeatureStoreComponent.from_attributes_dict(attributes={"definitons": "x"})


def test_feature_asset_key_follows_the_table_and_refuses_typos(tmp_path):
    folder = DefinitionsFolder(tmp_path)
    folder.write(base_definition(duckdb_table="prices.close_price"))
    assert feature_asset_key("close_price", definitions=folder.path) == dg.AssetKey(
        ["prices", "close_price"]
    )
    with pytest.raises(UnknownFeatureError, match="close_price"):
        feature_asset_key("close_prise", definitions=folder.path)
    # no definitions folder to check against: the default key
    assert feature_asset_key("x", definitions=tmp_path / "missing") == dg.AssetKey(
        ["features", "x"]
    )


def test_resource_outside_a_run_has_no_run_id(tmp_path):
    resource = FeatureStoreResource(definitions=str(tmp_path / "feature_definitions"))
    assert resource.run_id is None
    assert resource.settings.definitions_path == tmp_path / "feature_definitions"
