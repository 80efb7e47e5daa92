"""Hostile definitions: what anyone able to open a pull request against feature_definitions/
could try (issue 9), each refused at load or failing its build with nothing outside its
declared inputs read, written or dropped.

Two independent defences stand between a definition and the machine: the reference check at
load (``definitions.sql``, ``FeatureGraph``) and the build's execution (``build.sandbox``: a
connection with external access off and its configuration locked, user text run one statement
at a time). Each is tested alone, with the other one switched off.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from featurestore_dagster.build.publish import BuildStatus, FeatureBuilder
from featurestore_dagster.build.sandbox import (
    NotOneStatementError,
    execute_one,
    file_source_access,
    glob_directory,
    is_locked_down,
    lock_down,
)
from featurestore_dagster.cli.app import app
from featurestore_dagster.definitions.graph import FeatureGraph
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.errors import DefinitionError
from tests.conftest import base_definition

runner = CliRunner()

# Columns every probe returns, so a probe that ran would build a valid-looking feature.
KEYS = "'AAA' AS symbol, DATE '2024-01-02' AS date"


def probe_sqls(secret: Path, outside: Path) -> dict[str, str]:
    """Transformations that try to read, write or drop what they did not declare (``VALUE``
    stands for the feature's value column)."""
    return {
        "read_text": f"SELECT {KEYS}, content AS VALUE FROM read_text('{secret}')",
        "read_blob": f"SELECT {KEYS}, content::VARCHAR AS VALUE FROM read_blob('{secret}')",
        "glob_root": f"SELECT {KEYS}, file AS VALUE FROM glob('/*')",
        "query_table": f"SELECT {KEYS}, v::VARCHAR AS VALUE FROM query_table('raw.fundamentals')",
        "second_csv": (
            f"SELECT {KEYS}, secret AS VALUE"
            f" FROM read_csv(['{outside / 'declared.csv'}', '{secret.with_suffix('.csv')}'])"
        ),
        "passwd": f"SELECT {KEYS}, content AS VALUE FROM read_text('/etc/passwd')",
        "quoted_path": f'SELECT {KEYS}, secret AS VALUE FROM "{secret.with_suffix(".csv")}"',
        "nested_reader": (
            f"SELECT {KEYS}, (SELECT max(content) FROM read_text('{secret}')) AS VALUE"
            " FROM raw.prices LIMIT 1"
        ),
        "settings": f"SELECT {KEYS}, current_setting('temp_directory') AS VALUE",
        "catalog": f"SELECT {KEYS}, table_name AS VALUE FROM duckdb_tables()",
        "serialized_sql": f"SELECT {KEYS}, json_execute_serialized_sql('x')::VARCHAR AS VALUE",
        "sniff": f"SELECT {KEYS}, Delimiter AS VALUE FROM sniff_csv('{secret}')",
        "smuggled_copy": (
            f"SELECT {KEYS}, 'x' AS VALUE; COPY (SELECT 1) TO '{outside / 'copied.csv'}'"
        ),
        "smuggled_attach": (
            f"SELECT {KEYS}, 'x' AS VALUE; ATTACH '{outside / 'other.duckdb'}' AS other"
        ),
        "smuggled_drop": f"SELECT {KEYS}, 'x' AS VALUE; DROP TABLE raw.macro_series",
        "smuggled_set": f"SELECT {KEYS}, 'x' AS VALUE; SET enable_external_access = true",
    }


def custom_sql_probes(outside: Path) -> dict[str, str]:
    """``custom_sql`` rules that close the count's parenthesis and run their own statements."""
    return {
        "rule_copy": (
            "SELECT * FROM {{ table }}) t; COPY raw.prices TO"
            f" '{outside / 'exfiltrated.csv'}'; SELECT 1 FROM (SELECT 1"
        ),
        "rule_attach": (
            "SELECT * FROM {{ table }}) t;"
            f" ATTACH '{outside / 'attached.duckdb'}' AS a; SELECT 1 FROM (SELECT 1"
        ),
        "rule_drop": (
            "SELECT * FROM {{ table }}) t; DROP TABLE raw.macro_series; SELECT 1 FROM (SELECT 1"
        ),
        "rule_reads_secret_table": "SELECT * FROM {{ table }} WHERE symbol IN"
        " (SELECT v::VARCHAR FROM raw.fundamentals)",
        "rule_reads_file": "SELECT * FROM {{ table }}, read_text('/etc/passwd')",
    }


def probe_definition(name: str, sql: str, **overrides) -> dict:
    payload = base_definition(
        feature_name=name,
        data_type="string",
        sources=["raw.prices"],
        transformation={"transformation_type": "sql", "code": sql},
        validation_rules=[],
    )
    payload.update(overrides)
    return payload


def rule_definition(name: str, rule_sql: str) -> dict:
    return probe_definition(
        name,
        f"SELECT symbol, date, 'ok' AS {name} FROM raw.prices",
        validation_rules=[
            {"rule_type": "custom_sql", "name": "sneaky", "parameters": {"sql": rule_sql}}
        ],
    )


@pytest.fixture
def world(tmp_path):
    """A secret outside every declared input, a folder to catch writes, and raw tables."""
    secret = tmp_path / "secret" / "token.txt"
    secret.parent.mkdir()
    canary = f"TOPSECRET-{uuid.uuid4().hex}"
    secret.write_text(canary + "\n")
    secret.with_suffix(".csv").write_text(f"k,secret\n1,{canary}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "declared.csv").write_text("k,secret\n0,public\n")
    return secret, outside, canary


def seed(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        "CREATE OR REPLACE TABLE raw.prices AS"
        " SELECT 'AAA' AS symbol, DATE '2024-01-01' + i::INTEGER AS date, 10.0 + i AS close"
        " FROM range(3) t(i)"
    )
    conn.execute("CREATE OR REPLACE TABLE raw.fundamentals AS SELECT 'private' AS v")
    conn.execute("CREATE OR REPLACE TABLE raw.macro_series AS SELECT 1 AS v")


def transformation_probe(key: str, secret: Path, outside: Path) -> dict:
    name = f"probe_{key}"
    return probe_definition(name, probe_sqls(secret, outside)[key].replace("VALUE", name))


def all_probe_payloads(secret: Path, outside: Path) -> list[dict]:
    payloads = [transformation_probe(key, secret, outside) for key in probe_sqls(secret, outside)]
    payloads += [
        rule_definition(f"probe_{key}", sql) for key, sql in custom_sql_probes(outside).items()
    ]
    return payloads


def assert_nothing_escaped(conn, outside: Path, canary: str) -> None:
    # Nothing written outside, nothing attached, nothing dropped, the secret in no table.
    assert sorted(p.name for p in outside.iterdir()) == ["declared.csv"]
    databases = {
        row[0] for row in conn.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    from featurestore_dagster.storage.lake import OVERLAY, STAGING

    # The build's own in-memory catalogs (staging, check overlay) are attached before the lock.
    assert databases <= {"memory", "system", "temp", "featurestore", STAGING, OVERLAY}
    tables = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    assert ("raw", "macro_series") in tables
    for schema, table in tables:
        text = str(conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall())
        assert canary not in text, f"{schema}.{table} holds the secret"


# --- layer 1 alone: the reference check, with an open connection ----------------------------


def test_reference_check_alone_refuses_every_probe_at_load(world, definitions_folder):
    secret, outside, canary = world
    payloads = all_probe_payloads(secret, outside)
    for payload in payloads:
        definitions_folder.write(payload)

    with pytest.raises(DefinitionError) as raised:
        FeatureGraph.load(definitions_folder.path, check_python=False)

    refused = {issue.feature for issue in raised.value.issues}
    assert refused == {p["feature_name"] for p in payloads}
    for issue in raised.value.issues:
        assert issue.file is not None and issue.field is not None
        if issue.feature.startswith("probe_rule"):
            assert "custom_sql rule 'sneaky'" in issue.message
            assert issue.field == "validation_rules[0].parameters.sql"
        else:
            assert issue.field == "transformation.code"
    messages = "\n".join(issue.message for issue in raised.value.issues)
    for name in ("current_setting", "duckdb_tables", "json_execute_serialized_sql"):
        assert f"{name}()" in messages
    assert "undeclared table raw.fundamentals" in messages
    assert f"undeclared file '{secret}'" in messages and "undeclared file '/*'" in messages
    assert "exactly one SELECT" in messages


def test_without_the_sandbox_the_probes_would_have_read_the_secret(world):
    """What the reference check is stopping: on an open connection the probes do work."""
    secret, outside, canary = world
    conn = duckdb.connect()
    seed(conn)
    for key in ("read_text", "read_blob", "second_csv", "quoted_path", "nested_reader"):
        sql = probe_sqls(secret, outside)[key]
        assert canary in str(conn.execute(sql).fetchall()), key
    assert conn.execute(probe_sqls(secret, outside)["query_table"]).fetchall()[0][-1] == "private"


# --- layer 2 alone: the locked build connection, reference check bypassed -------------------


def unvalidated_graph(payloads: list[dict]) -> FeatureGraph:
    # FeatureGraph(...) itself validates nothing: this is the reference check switched off.
    return FeatureGraph(FeatureDefinition.model_validate(p) for p in payloads)


def test_locked_connection_alone_stops_every_probe_that_leaves_the_lake(world):
    secret, outside, canary = world
    conn = duckdb.connect()
    seed(conn)
    lock_down(conn)
    assert is_locked_down(conn)
    outside_keys = [k for k in probe_sqls(secret, outside) if k not in {"query_table", "catalog"}]
    payloads = [transformation_probe(key, secret, outside) for key in outside_keys]
    builder = FeatureBuilder(conn, unvalidated_graph(payloads))

    results = {b.feature_name: b for b in builder.build_all([p["feature_name"] for p in payloads])}

    for name, build in results.items():
        if name in {"probe_settings", "probe_serialized_sql"}:
            # Reading a setting is harmless data; running serialized SQL fails on bad input.
            continue
        assert build.status == BuildStatus.FAILED, (name, build.status)
        assert (
            "Permission Error" in build.error
            or "disabled by configuration" in build.error
            or "exactly one" in build.error
        ), (name, build.error)
    assert_nothing_escaped(conn, outside, canary)
    assert is_locked_down(conn)  # the smuggled SET did not run either


def test_locked_connection_alone_runs_custom_sql_rules_one_statement_at_a_time(world):
    secret, outside, canary = world
    conn = duckdb.connect()
    seed(conn)
    lock_down(conn)
    # rule_reads_secret_table reads inside the lake: only the reference check stops it.
    probes = custom_sql_probes(outside)
    probes.pop("rule_reads_secret_table")
    payloads = [rule_definition(f"probe_{k}", sql) for k, sql in probes.items()]
    builder = FeatureBuilder(conn, unvalidated_graph(payloads))

    for build in builder.build_all([p["feature_name"] for p in payloads]):
        sneaky = next(c for c in build.checks if c.name == "sneaky")
        assert not sneaky.passed
        error = sneaky.metadata["error"]
        assert any(
            text in error for text in ("exactly one", "does not parse", "Permission Error")
        ), (build.feature_name, error)
    assert_nothing_escaped(conn, outside, canary)


def test_user_text_runs_as_one_statement_or_not_at_all(world):
    """The last guard: what DuckDB splits into several statements is never executed, even when
    pasted into a larger one that hides the split from a parser that sees only the rule."""
    secret, outside, canary = world
    conn = duckdb.connect()
    seed(conn)
    lock_down(conn)
    wrapped = "SELECT count(*) FROM (SELECT 1) t; DROP TABLE raw.macro_series; SELECT (1)"
    with pytest.raises(NotOneStatementError, match="found 3"):
        execute_one(conn, wrapped)
    assert execute_one(conn, "SELECT count(*) FROM raw.macro_series").fetchone() == (1,)
    assert_nothing_escaped(conn, outside, canary)


def test_python_transformations_get_the_sandboxed_connection(world, tmp_path, monkeypatch):
    secret, outside, canary = world
    module = tmp_path / "hostile_python.py"
    module.write_text(
        "def steal(conn, inputs):\n"
        f"    return conn.sql(\"SELECT {KEYS}, content AS thief FROM read_text('{secret}')\")\n"
        "\n\n"
        "def unlock(conn, inputs):\n"
        "    conn.execute('SET enable_external_access = true')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    payloads = [
        probe_definition(
            name,
            "x",
            sources=[],
            transformation={"transformation_type": "python", "code": f"hostile_python:{fn}"},
        )
        for name, fn in (("thief", "steal"), ("unlocker", "unlock"))
    ]
    conn = duckdb.connect()
    seed(conn)
    lock_down(conn)
    builds = list(
        FeatureBuilder(conn, unvalidated_graph(payloads)).build_all(["thief", "unlocker"])
    )
    assert [b.status for b in builds] == [BuildStatus.FAILED, BuildStatus.FAILED]
    assert "disabled by configuration" in builds[0].error
    assert "locked" in builds[1].error
    assert_nothing_escaped(conn, outside, canary)


def test_declared_file_sources_stay_readable_and_nothing_else(world, tmp_path):
    secret, outside, canary = world
    data = tmp_path / "data" / "prices"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    (data / "b.csv").write_text("x\n2\n")
    single = tmp_path / "single.csv"
    single.write_text("x\n3\n")
    directories, paths = file_source_access([str(data / "*.csv"), str(single)])
    assert directories == [str(data) + "/"] and paths == [str(single)]
    conn = duckdb.connect()
    lock_down(conn, allowed_directories=directories, allowed_paths=paths)
    assert conn.execute(f"SELECT sum(x) FROM read_csv('{data}/*.csv')").fetchone() == (3,)
    assert conn.execute(f"SELECT sum(x) FROM read_csv('{single}')").fetchone() == (3,)
    for escape in (str(secret), f"{data}/../../secret/token.txt", str(tmp_path / "data" / "x")):
        with pytest.raises(duckdb.PermissionException):
            conn.execute(f"SELECT * FROM read_text('{escape}')")
    with pytest.raises(duckdb.PermissionException):
        conn.execute(f"COPY (SELECT 1) TO '{outside / 'x.csv'}'")


@pytest.mark.parametrize(
    "pattern,directory",
    [
        ("data/*.parquet", "data"),
        ("/a/b/**/x*.csv", "/a/b"),
        ("*.csv", ""),
        ("/x/[ab]/y.csv", "/x"),
    ],
)
def test_a_glob_opens_the_directory_before_its_first_wildcard(pattern, directory):
    assert glob_directory(pattern) == directory


# --- both layers through the real CLI -------------------------------------------------------


def test_materialize_refuses_a_hostile_definition_before_building_anything(
    world, definitions_folder, store_env
):
    secret, outside, canary = world
    definitions_folder.write(base_definition())
    sql = probe_sqls(secret, outside)["read_text"].replace("VALUE", "leak")
    definitions_folder.write(probe_definition("leak", sql))
    result = runner.invoke(app, ["materialize"], env=store_env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "'leak'" in result.stderr and "undeclared file" in result.stderr
    assert canary not in result.output


def test_materialize_runs_python_transformations_on_the_sandboxed_connection(
    world, definitions_folder, store_env, tmp_path, monkeypatch
):
    """The Dagster build step locks its connection before any definition runs."""
    secret, outside, canary = world
    (tmp_path / "thief_module.py").write_text(
        "def steal(conn, inputs):\n"
        f"    return conn.sql(\"SELECT {KEYS}, content AS thief FROM read_text('{secret}')\")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    definitions_folder.write(
        probe_definition(
            "thief",
            "x",
            sources=[],
            transformation={"transformation_type": "python", "code": "thief_module:steal"},
        )
    )
    result = runner.invoke(app, ["materialize"], env=store_env)
    assert result.exit_code == 1, result.output
    assert "disabled by configuration" in result.output
    assert canary not in result.output


# --- YAML, names ----------------------------------------------------------------------------


def alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", [["list"], ["plan"], ["materialize"]])
def test_a_yaml_alias_bomb_is_one_message_in_well_under_a_second(
    command, definitions_folder, store_env
):
    bomb = alias_bomb()
    assert len(bomb) < 800
    definitions_folder.write_text("bomb.yaml", bomb)
    started = time.perf_counter()
    result = runner.invoke(app, command, env=store_env)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    assert "bomb.yaml" in result.stderr and "aliases expand" in result.stderr
    assert "Traceback" not in result.output
    print(f"{command[0]}: alias bomb refused in {elapsed:.3f}s")


def test_aliases_within_bounds_still_work(definitions_folder):
    definitions_folder.write_text(
        "aliased.yaml",
        "defaults: &rules\n"
        "  - {rule_type: range, parameters: {min: 0}, is_blocking: true}\n"
        "features:\n"
        "  - feature_name: close_price\n"
        "    feature_type: raw\n"
        "    data_type: float\n"
        "    entity_columns: [symbol]\n"
        "    sources: [raw.prices]\n"
        "    transformation: {code: 'SELECT symbol, date, close AS close_price FROM raw.prices'}\n"
        "    validation_rules: *rules\n",
    )
    with pytest.raises(DefinitionError, match="holds nothing else"):
        FeatureGraph.load(definitions_folder.path, check_python=False)  # the file's own rule
    definitions_folder.write_text(
        "aliased.yaml",
        "feature_name: close_price\n"
        "feature_type: raw\n"
        "data_type: float\n"
        "entity_columns: &keys [symbol]\n"
        "sources: [raw.prices]\n"
        "transformation: {code: 'SELECT symbol, date, close AS close_price FROM raw.prices'}\n"
        "validation_rules:\n"
        "  - {rule_type: unique, parameters: {columns: *keys}}\n",
    )
    graph = FeatureGraph.load(definitions_folder.path, check_python=False)
    assert graph["close_price"].validation_rules[0].parameters == {"columns": ["symbol"]}


@pytest.mark.parametrize(
    "text",
    [
        "feature_name: x\ntransformation:\n  parameters:\n    p: " + "[" * 990 + "]" * 990 + "\n",
        "feature_name: x\ntransformation:\n  parameters:\n    p: " + "[" * 1000 + "]" * 1000 + "\n",
        "a: " + "{b: " * 500 + "1" + "}" * 500 + "\n",
        "a: &a [*a]\n",
    ],
    ids=["990-deep", "1000-deep", "500-deep-mappings", "self-alias"],
)
def test_deep_or_recursive_yaml_is_one_message(text, definitions_folder, store_env):
    definitions_folder.write_text("deep.yaml", text)
    result = runner.invoke(app, ["list"], env=store_env)
    assert result.exit_code == 2, result.output
    assert "deep.yaml" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "overrides,field,message",
    [
        ({"duckdb_table": "features.__staging_close_price"}, "duckdb_table", "staging"),
        ({"duckdb_table": "raw.__staging_x"}, "duckdb_table", "staging"),
        ({"duckdb_table": "_rejected.close_price"}, "duckdb_table", "reserved"),
        ({"duckdb_table": "_latest.close_price"}, "duckdb_table", "reserved"),
        ({"duckdb_table": "_Rejected.other"}, "duckdb_table", "reserved"),
        ({"duckdb_table": "information_schema.tables"}, "duckdb_table", "reserved"),
        ({"duckdb_table": "raw.prices"}, "duckdb_table", "source of feature"),
        ({"sources": ["_rejected.close_price"]}, "sources", "reserved"),
        ({"sources": ["features.__staging_close_price"]}, "sources", "staging"),
        ({"sources": ["/*.csv"]}, "sources", "must start with its directory"),
        ({"sources": ["**/*.parquet"]}, "sources", "must start with its directory"),
    ],
)
def test_reserved_and_colliding_tables_are_refused_at_load(
    overrides, field, message, definitions_folder
):
    definitions_folder.write(base_definition())
    victim = probe_definition(
        "intruder",
        "SELECT symbol, date, 'x' AS intruder FROM raw.prices",
        **overrides,
    )
    if "sources" in overrides:
        source = overrides["sources"][0]
        table = source if "." in source and "/" not in source else f"'{source}'"
        victim["transformation"]["code"] = f"SELECT symbol, date, 'x' AS intruder FROM {table}"
    definitions_folder.write(victim)
    with pytest.raises(DefinitionError) as raised:
        FeatureGraph.load(definitions_folder.path, check_python=False)
    issues = [i for i in raised.value.issues if i.feature == "intruder" and i.field == field]
    assert issues and message in issues[0].message, raised.value.issues


def test_a_staging_name_cannot_destroy_another_features_build(definitions_folder, store_env):
    definitions_folder.write(base_definition())
    definitions_folder.write(
        probe_definition(
            "squatter",
            "SELECT symbol, date, 'x' AS squatter FROM raw.prices",
            duckdb_table="features.__staging_close_price",
        )
    )
    result = runner.invoke(app, ["materialize"], env=store_env)
    assert result.exit_code == 2
    assert "squatter" in result.stderr and "__staging_" in result.stderr


def test_custom_sql_may_read_its_table_and_declared_inputs(definitions_folder):
    rule = (
        "SELECT t.* FROM {{table}} AS t JOIN raw.prices AS p USING (symbol, date)"
        " WHERE t.close_price <> p.close"
    )
    definitions_folder.write(
        base_definition(validation_rules=[{"rule_type": "custom_sql", "parameters": {"sql": rule}}])
    )
    graph = FeatureGraph.load(definitions_folder.path, check_python=False)
    assert graph["close_price"].validation_rules[0].parameters["sql"] == rule


def test_binding_at_plan_time_runs_on_a_locked_connection_too(world):
    """``plan``/``check`` bind each SQL feature with DuckDB (DESCRIBE over empty tables): with
    the reference check bypassed, that connection still reads and writes nothing outside."""
    from featurestore_dagster.definitions.binder import bind_graph

    secret, outside, canary = world
    keys = ["read_text", "read_blob", "second_csv", "quoted_path", "smuggled_copy"]
    keys += ["smuggled_attach", "smuggled_set"]
    payloads = [transformation_probe(key, secret, outside) for key in keys]
    prices = [("symbol", "VARCHAR"), ("date", "DATE"), ("close", "DOUBLE")]
    issues = bind_graph(unvalidated_graph(payloads), {"raw.prices": prices})
    text = "\n".join(str(issue) for issue in issues)
    assert canary not in text
    assert "disabled by configuration" in text  # the readers were refused by DuckDB itself
    assert sorted(p.name for p in outside.iterdir()) == ["declared.csv"]


@pytest.mark.parametrize("depth", [400, 1000])
def test_deeply_nested_sql_is_one_message_on_every_command(depth, definitions_folder, store_env):
    sql = "SELECT x FROM (" * depth + "SELECT 1 AS x" + ")" * depth
    definitions_folder.write(probe_definition("deep_sql", sql, sources=[]))
    for command in (["list"], ["plan"], ["materialize"]):
        result = runner.invoke(app, command, env=store_env)
        assert result.exit_code == 2, (command, result.output)
        assert "nested" in result.stderr and "Traceback" not in result.output


def test_a_cached_answer_never_outlives_the_rules(tmp_path):
    """The load cache is keyed by the reference rules' version: an entry written under older
    rules is not served."""
    from featurestore_dagster.definitions import cache as cache_module

    path = tmp_path / "cache.json"
    sql = "SELECT * FROM read_text('/etc/passwd')"
    stale = {"version": "an older release", "entries": {}}
    import hashlib
    import json

    key = "refs:" + hashlib.sha256(sql.encode()).hexdigest()
    stale["entries"][key] = [[], []]  # "reads nothing": what an older, laxer check said
    path.write_text(json.dumps(stale))
    assert cache_module.LoadCache(path).references(sql).files == frozenset({"/etc/passwd"})
    assert "rules=" in cache_module._VERSION
