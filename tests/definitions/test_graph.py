"""FeatureGraph: edges, closures, order, cycles, and the load cache."""

from __future__ import annotations

import pytest

from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError, UnknownFeatureError
from tests.conftest import base_definition


def feature(name, *parents, **overrides):
    if parents:
        joins = " ".join(f"JOIN features.{p} USING (symbol, date)" for p in parents[1:])
        sql = f"SELECT symbol, date, 1.0 AS {name} FROM features.{parents[0]} {joins}"
        payload = base_definition(
            feature_name=name,
            upstream_features=list(parents),
            sources=[],
            transformation={"code": sql},
        )
    else:
        payload = base_definition(
            feature_name=name,
            transformation={"code": f"SELECT symbol, date, close AS {name} FROM raw.prices"},
        )
    payload.update(overrides)
    return FeatureDefinition.model_validate(payload)


@pytest.fixture
def diamond():
    #   a -> b -> d
    #   a -> c -> d -> e
    return FeatureGraph.from_definitions(
        [
            feature("aa"),
            feature("bb", "aa"),
            feature("cc", "aa"),
            feature("dd", "bb", "cc"),
            feature("ee", "dd"),
        ]
    )


@pytest.mark.parametrize(
    "method,name,expected",
    [
        ("upstream", "dd", ["bb", "cc"]),
        ("downstream", "aa", ["bb", "cc"]),
        ("upstream_closure", "ee", {"aa", "bb", "cc", "dd"}),
        ("downstream_closure", "aa", {"bb", "cc", "dd", "ee"}),
        ("downstream_closure", "ee", set()),
        ("with_upstream", ["dd"], ["aa", "bb", "cc", "dd"]),
        ("with_downstream", ["cc"], ["cc", "dd", "ee"]),
    ],
)
def test_edges_and_closures(diamond, method, name, expected):
    assert getattr(diamond, method)(name) == expected


def test_topological_order_is_stable(diamond):
    assert diamond.topological_order() == ["aa", "bb", "cc", "dd", "ee"]
    assert [d.feature_name for d in diamond] == ["aa", "bb", "cc", "dd", "ee"]


def test_unknown_feature_suggests_close_names(diamond):
    with pytest.raises(UnknownFeatureError, match="did you mean.*dd|Did you mean: dd"):
        diamond.downstream("ddd")


def test_cycle_error_lists_the_whole_cycle():
    with pytest.raises(DefinitionError) as error:
        FeatureGraph.from_definitions(
            [feature("aa", "cc"), feature("bb", "aa"), feature("cc", "bb"), feature("dd")]
        )
    assert "aa -> bb -> cc -> aa" in str(error.value)
    assert len([i for i in error.value.issues if "cycle" in i.message]) == 1


def test_archived_features_are_not_compiled(diamond):
    graph = FeatureGraph.from_definitions([feature("aa"), feature("bb", "aa", status="archived")])
    assert [d.feature_name for d in graph.compiled] == ["aa"]
    assert graph.downstream("aa") == ["bb"]  # history and guards still see it


def test_closure_on_a_large_graph_is_linear():
    # 5,000 features in a chain: a quadratic closure would take seconds; this takes ms.
    definitions = [feature("f00000")]
    definitions += [feature(f"f{i:05d}", f"f{i - 1:05d}") for i in range(1, 5000)]
    graph = FeatureGraph(definitions)
    assert len(graph.downstream_closure("f00000")) == 4999
    assert len(graph.upstream_closure("f04999")) == 4999


def test_load_cache_serves_the_same_graph(definitions_folder, tmp_path):
    definitions_folder.write(base_definition())
    cache = tmp_path / "cache.json"
    first = FeatureGraph.load(definitions_folder.path, cache_path=cache)
    assert cache.exists()
    second = FeatureGraph.load(definitions_folder.path, cache_path=cache)
    assert first["close_price"] == second["close_price"]


def test_cache_never_hides_an_edit(definitions_folder, tmp_path):
    cache = tmp_path / "cache.json"
    definitions_folder.write(base_definition())
    FeatureGraph.load(definitions_folder.path, cache_path=cache)
    definitions_folder.write(
        base_definition(
            transformation={"code": "SELECT symbol, date, close AS close_price FROM raw.other"}
        )
    )
    with pytest.raises(DefinitionError, match="raw.other"):
        FeatureGraph.load(definitions_folder.path, cache_path=cache)


def test_corrupt_cache_is_ignored(definitions_folder, tmp_path):
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    definitions_folder.write(base_definition())
    assert "close_price" in FeatureGraph.load(definitions_folder.path, cache_path=cache)


@pytest.mark.parametrize(
    "toml,attribute,expected",
    [
        ('definitions = "defs"', "definitions_path", "defs"),
        ('definitions_path = "defs"', "definitions_path", "defs"),
        ('lake_data = "data/lake"', "lake_data", "data/lake"),
        ('lake_catalog = "sqlite:data/l.sqlite"', "lake_catalog", "sqlite:{root}/data/l.sqlite"),
        (
            'lake_catalog = "postgresql://u@db/lake"',
            "lake_catalog",
            "postgresql://u@db/lake",
        ),
        ('registry_url = "sqlite:///r.db"', "registry_url", "sqlite:///r.db"),
    ],
)
def test_pyproject_settings(tmp_path, monkeypatch, toml, attribute, expected):
    from featurestore_dagster.config import Settings

    for name in (
        "FEATURESTORE_DEFINITIONS",
        "FEATURESTORE_LAKE_CATALOG",
        "FEATURESTORE_LAKE_DATA",
        "FEATURESTORE_REGISTRY_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "pyproject.toml").write_text(f"[tool.featurestore]\n{toml}\n")
    value = getattr(Settings.load(start=tmp_path), attribute)
    expected = expected.format(root=tmp_path.resolve())
    assert str(value) in (expected, str(tmp_path / expected), str(tmp_path.resolve() / expected))


def test_environment_beats_pyproject(tmp_path, monkeypatch):
    from featurestore_dagster.config import Settings

    (tmp_path / "pyproject.toml").write_text('[tool.featurestore]\nlake_data = "a"\n')
    monkeypatch.setenv("FEATURESTORE_LAKE_DATA", str(tmp_path / "b"))
    assert Settings.load(start=tmp_path).lake_data == tmp_path / "b"
