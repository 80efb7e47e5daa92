"""The Python API: every change edits the definition file and registers it in one step."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from sqlalchemy import insert

from featurestore_dagster import (
    BreakingChangeError,
    DefinitionError,
    FeatureInfo,
    FeatureStore,
    FeatureVersion,
    RegistryError,
    TransitionError,
    UnknownFeatureError,
    VersionError,
)
from featurestore_dagster.registry.models import FeatureVersionRecord, UsageRecord, utcnow
from tests.conftest import DefinitionsFolder, base_definition

CHILD_SQL = "SELECT symbol, date, close_price * 2 AS {name} FROM features.close_price"


def child(name: str = "double_price", **overrides):
    return base_definition(
        feature_name=name,
        feature_type="derived",
        sources=[],
        upstream_features=["close_price"],
        transformation={"transformation_type": "sql", "code": CHILD_SQL.format(name=name)},
        **overrides,
    )


@pytest.fixture
def folder(tmp_path) -> DefinitionsFolder:
    return DefinitionsFolder(tmp_path)


@pytest.fixture
def store(folder, registry_url, tmp_path) -> FeatureStore:
    return FeatureStore(
        definitions_path=folder.path,
        registry_url=registry_url,
        lake_catalog=f"sqlite:{tmp_path / 'lake.sqlite'}",
        lake_data=tmp_path / "lake",
        user="tester",
    )


def snapshot_files(folder: DefinitionsFolder) -> dict[str, str]:
    return {str(p): p.read_text() for p in sorted(folder.path.rglob("*.yaml"))}


# --- create / get / list -----------------------------------------------------------------------


def test_create_feature_writes_the_file_and_registers(store, folder):
    info = store.create_feature(**base_definition(), created_by="alice")
    assert isinstance(info, FeatureInfo)
    assert (info.feature_name, info.version, info.current_version) == (
        "close_price",
        "1.0.0",
        "1.0.0",
    )
    assert info.registered and info.created_at and info.usage_count == 0
    written = yaml.safe_load((folder.path / "close_price.yaml").read_text())
    assert written["transformation"]["code"].startswith("SELECT symbol")
    [version] = store.get_feature_versions("close_price")
    assert (version.change_category, version.created_by) == ("initial", "alice")
    assert store.plan().pending == []


@pytest.mark.parametrize(
    "overrides,exception,phrase",
    [
        ({"descripton": "typo"}, DefinitionError, "descripton"),
        ({"version": "1.0"}, DefinitionError, "not a semantic version"),
        ({"upstream_features": ["missing"]}, DefinitionError, "does not exist"),
    ],
)
def test_create_feature_refusals_write_nothing(store, folder, overrides, exception, phrase):
    with pytest.raises(exception, match=phrase):
        store.create_feature(**base_definition(**overrides))
    assert snapshot_files(folder) == {}
    assert store.registry.registered_state() == {}


def test_create_feature_refuses_an_existing_name(store, folder):
    folder.write(base_definition())
    with pytest.raises(DefinitionError, match="already defined"):
        store.create_feature(**base_definition())


def test_get_and_list_features(store, folder):
    folder.write(base_definition())
    folder.write(child(tags=["derived"], owner="ops"))
    folder.write(child("triple_price", status="draft"))
    store.apply()
    info = store.get_feature("close_price")
    assert info.downstream_features == ["double_price", "triple_price"]
    assert info.current_version == "1.0.0" and info.updated_at is not None
    assert [f.feature_name for f in store.list_features(owner="ops")] == ["double_price"]
    assert [f.feature_name for f in store.list_features(status="draft")] == ["triple_price"]
    assert [f.feature_name for f in store.list_features(tags=["derived"])] == ["double_price"]
    assert [f.feature_name for f in store.list_features(feature_type="raw")] == ["close_price"]
    assert [f.feature_name for f in store.list_features(skip=1, limit=1)] == ["double_price"]
    with pytest.raises(UnknownFeatureError, match="close_pric"):
        store.get_feature("close_pric")


# --- update / versions -------------------------------------------------------------------------

COMMENTED = textwrap.dedent(
    """\
    # The close, straight from the vendor.
    feature_name: close_price
    version: 1.0.0
    feature_type: raw
    data_type: float
    status: active
    description: Daily close   # shown in the catalog
    owner: quant-team
    tags: [price]
    entity_columns: [symbol]
    timestamp_column: date
    sources: [raw.prices]
    transformation:
      transformation_type: sql
      code: |
        -- keep it simple
        SELECT symbol, date, close AS close_price FROM raw.prices
    validation_rules:
      - rule_type: range
        parameters: {min: 0}
        is_blocking: true
    changelog: Initial version
    """
)


@pytest.mark.parametrize(
    "changes,version,category",
    [
        ({"description": "The close"}, "1.0.1", "metadata"),
        ({"validation_rules": []}, "1.1.0", "data"),
        ({"data_type": "integer"}, "2.0.0", "breaking"),
    ],
)
def test_update_feature_bumps_by_category_and_keeps_comments(
    store, folder, changes, version, category
):
    path = folder.write_text("close_price.yaml", COMMENTED)
    store.apply()
    info = store.update_feature("close_price", **changes)
    assert (info.version, info.current_version) == (version, version)
    latest = store.get_feature_versions("close_price")[0]
    assert (latest.version, latest.change_category) == (version, category)
    assert latest.breaking_changes is (category == "breaking")
    text = path.read_text()
    assert text.startswith("# The close, straight from the vendor.\n")
    assert "-- keep it simple" in text
    assert f"version: {version}\n" in text
    assert store.plan().pending == []


def test_update_without_change_registers_nothing(store, folder):
    folder.write(base_definition())
    store.apply()
    store.update_feature("close_price", description="Daily close")
    assert len(store.get_feature_versions("close_price")) == 1


@pytest.mark.parametrize(
    "kwargs,exception,phrase",
    [
        ({"version": "1.0.1", "validation_rules": []}, VersionError, "use version 1.1.0"),
        ({"version": "1.0.0", "description": "x"}, VersionError, "use version 1.0.1"),
        ({"version": "2.0", "description": "x"}, VersionError, "not a semantic version"),
        ({"timestamp_column": "close_price"}, DefinitionError, "must all differ"),
    ],
)
def test_refused_updates_write_nothing(store, folder, kwargs, exception, phrase):
    folder.write(base_definition())
    store.apply()
    before = snapshot_files(folder)
    with pytest.raises(exception, match=phrase) as caught:
        store.update_feature("close_price", **kwargs)
    assert caught.value.exit_code == 2
    assert snapshot_files(folder) == before
    assert [v.version for v in store.get_feature_versions("close_price")] == ["1.0.0"]


def test_update_in_a_features_list_file(store, folder):
    path = folder.write_text(
        "prices.yaml",
        "# two features\nfeatures:\n"
        + textwrap.indent(yaml.safe_dump([base_definition()], sort_keys=False), "  ")
        + "\n  # the child\n"
        + textwrap.indent(yaml.safe_dump([child()], sort_keys=False), "  "),
    )
    store.apply()
    store.update_feature("double_price", description="Twice the close")
    text = path.read_text()
    assert "# two features" in text and "# the child" in text
    loaded = yaml.safe_load(text)["features"]
    assert [f["version"] for f in loaded] == ["1.0.0", "1.0.1"]
    assert loaded[1]["description"] == "Twice the close"


def test_create_version_and_get_version(store, folder):
    folder.write(base_definition())
    store.apply()
    major = store.create_version("close_price", bump="major", changelog="Re-based")
    assert isinstance(major, FeatureVersion)
    assert (major.version, major.change_category, major.changelog) == ("2.0.0", "none", "Re-based")
    explicit = store.create_version("close_price", version="2.1.0", description="x")
    assert (explicit.version, explicit.change_category) == ("2.1.0", "metadata")
    assert [v.version for v in store.get_feature_versions("close_price")] == [
        "2.1.0",
        "2.0.0",
        "1.0.0",
    ]
    assert store.get_version("close_price", "2.0.0").snapshot["version"] == "2.0.0"
    with pytest.raises(VersionError, match="no registered version 9.0.0"):
        store.get_version("close_price", "9.0.0")
    with pytest.raises(UnknownFeatureError):
        store.get_feature_versions("nope")


def test_unregistered_changes_must_be_applied_first(store, folder):
    folder.write(base_definition())
    store.apply()
    folder.write(base_definition(version="1.1.0", validation_rules=[]))
    with pytest.raises(TransitionError, match="unregistered changes"):
        store.update_feature("close_price", description="x")


def test_a_failed_registration_restores_the_file(store, folder):
    folder.write(base_definition())
    store.apply()
    with store.registry.engine.begin() as conn:  # someone else's 1.0.1, out of band
        conn.execute(
            insert(FeatureVersionRecord.__table__),
            [
                {
                    "feature_name": "close_price",
                    "version": "1.0.1",
                    "major": 1,
                    "minor": 0,
                    "patch": 1,
                    "change_category": "metadata",
                    "snapshot": {},
                    "data_fingerprint": "x",
                    "metadata_fingerprint": "y",
                    "created_at": utcnow(),
                }
            ],
        )
    before = snapshot_files(folder)
    with pytest.raises(RegistryError, match="1.0.1 is already registered"):
        store.update_feature("close_price", description="x")
    assert snapshot_files(folder) == before


# --- rollback ----------------------------------------------------------------------------------


def test_rollback_restores_the_snapshot_as_a_new_version(store, folder):
    path = folder.write_text("close_price.yaml", COMMENTED)
    store.apply()
    store.update_feature("close_price", description="The close")  # 1.0.1
    store.update_feature(
        "close_price",
        transformation={
            "transformation_type": "sql",
            "code": "SELECT symbol, date, close * 1.5 AS close_price FROM raw.prices\n",
        },
        validation_rules=[],
    )  # 1.1.0
    assert store.code_versions()["close_price"] == "1.1.0"
    version = store.rollback_version("close_price", to_version="1.0.0", changelog="bad scaling")
    assert (version.version, version.change_category) == ("1.2.0", "data")
    assert version.changelog == "Rollback to 1.0.0: bad scaling"
    assert version.restored_from == "1.0.0"
    marks = {v.version: v.is_rolled_back for v in store.get_feature_versions("close_price")}
    assert marks == {"1.2.0": False, "1.1.0": True, "1.0.1": True, "1.0.0": False}
    text = path.read_text()
    assert "-- keep it simple" in text and "close * 1.5" not in text
    assert "description: The close" in text  # metadata is not rolled back
    assert "# The close, straight from the vendor." in text
    # the data is version 1.0.0's again, and so is the code version
    assert store.code_versions()["close_price"] == "1.0.0"
    assert store.plan().pending == []


@pytest.mark.parametrize(
    "target,exception,phrase",
    [
        ("7.0.0", VersionError, "no registered version 7.0.0"),
        ("7.0", VersionError, "not a semantic version"),
        ("1.0.1", TransitionError, "nothing to roll back"),
    ],
)
def test_refused_rollbacks_write_nothing(store, folder, target, exception, phrase):
    folder.write(base_definition())
    store.apply()
    store.update_feature("close_price", description="x")
    before = snapshot_files(folder)
    with pytest.raises(exception, match=phrase):
        store.rollback_version("close_price", target)
    assert snapshot_files(folder) == before
    assert len(store.get_feature_versions("close_price")) == 2


# --- lifecycle ---------------------------------------------------------------------------------


def test_lifecycle_transitions(store, folder):
    folder.write(base_definition())
    path = folder.write(child(status="draft"))
    store.apply()
    info = store.activate_feature("double_price")
    assert (info.status.value, info.version) == ("active", "1.0.1")
    assert "status: active" in path.read_text()
    with pytest.raises(TransitionError, match="double_price.*is active: cannot activate"):
        store.activate_feature("double_price")
    with pytest.raises(TransitionError, match="active downstream feature.*double_price"):
        store.deprecate_feature("close_price")
    with pytest.raises(TransitionError, match="non-archived downstream.*double_price"):
        store.delete_feature("close_price")
    deprecated = store.deprecate_feature("double_price")
    assert deprecated.status.value == "deprecated" and deprecated.deprecated_at is not None
    archived = store.delete_feature("double_price")
    assert archived.status.value == "archived" and archived.archived_at is not None
    store.deprecate_feature("close_price")
    events = [e["event"] for e in store.registry.events("double_price")]
    assert events == ["archived", "deprecated", "activated", "registered"]
    assert store.plan().pending == []


def test_refused_transitions_write_nothing(store, folder):
    folder.write(base_definition(status="draft"))
    store.apply()
    before = snapshot_files(folder)
    with pytest.raises(TransitionError, match="draft: cannot deprecate"):
        store.deprecate_feature("close_price")
    assert snapshot_files(folder) == before


# --- impact ------------------------------------------------------------------------------------


def test_breaking_change_under_production_models_needs_consent(store, folder):
    folder.write(base_definition())
    folder.write(child())
    store.apply()
    with store.registry.engine.begin() as conn:
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "feature_name": "double_price",
                    "feature_version": "1.0.0",
                    "used_by_model": "ranker",
                    "model_version": "4",
                    "environment": "production",
                    "usage_timestamp": utcnow(),
                }
            ],
        )
    with pytest.raises(BreakingChangeError, match="ranker@4") as caught:
        store.update_feature("close_price", data_type="integer")
    assert "double_price" in str(caught.value) and caught.value.exit_code == 2
    assert store.update_feature("close_price", data_type="integer", allow_breaking=True)
    assert store.get_feature("close_price").current_version == "2.0.0"


# --- host contract -------------------------------------------------------------------------


def test_defaults_come_from_the_environment(store_env, tmp_path):
    DefinitionsFolder(tmp_path).write(base_definition())
    store = FeatureStore()
    assert store.settings.definitions_path == tmp_path / "feature_definitions"
    assert store.settings.registry_url == store_env["FEATURESTORE_REGISTRY_URL"]
    assert [v.feature_name for v in store.apply()] == ["close_price"]
    assert (tmp_path / "registry.db").exists()


def test_usage_mixin_host_contract(store, folder):
    folder.write(base_definition())
    store.apply()
    assert "close_price" in store.graph
    assert store.registry.engine is store.registry.engine
    store.record_feature_usage(
        feature_name="close_price",
        used_by_model="ranker",
        model_version="1",
        environment="dev",
        feature_importance=0.3,
    )
    assert store.get_feature("close_price").usage_count == 1


def test_graph_follows_the_files(store, folder):
    folder.write(base_definition())
    assert store.graph.names == ["close_price"]
    folder.write(child())
    assert store.graph.names == ["close_price", "double_price"]


def test_partial_transformation_update_keeps_the_rest(store, folder):
    folder.write(
        base_definition(
            transformation={
                "code": "SELECT symbol, date, close * {{ k }} AS close_price FROM raw.prices",
                "parameters": {"k": 1},
            }
        )
    )
    store.apply()
    store.update_feature("close_price", transformation={"parameters": {"k": 2}})
    info = store.get_feature("close_price")
    assert info.transformation.parameters == {"k": 2}
    assert "{{ k }}" in info.transformation.code and info.version == "1.1.0"


def test_archived_features_are_not_rolled_back(store, folder):
    folder.write(base_definition())
    store.apply()
    store.update_feature("close_price", validation_rules=[])
    store.delete_feature("close_price")
    with pytest.raises(TransitionError, match="archived"):
        store.rollback_version("close_price", "1.0.0")


def test_create_feature_in_a_fresh_project(tmp_path, registry_url):
    store = FeatureStore(
        definitions_path=tmp_path / "new_project" / "feature_definitions",
        registry_url=registry_url,
        lake_data=tmp_path / "lake",
    )
    assert store.list_features() == []
    store.create_feature(**base_definition())
    assert (tmp_path / "new_project" / "feature_definitions" / "close_price.yaml").exists()
    assert store.get_feature("close_price").registered
