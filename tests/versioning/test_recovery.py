"""A change killed between rewriting its definition file and committing the registry is
recovered by the next attempt, as the change it was (issue 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from featurestore_dagster.cli.app import app
from tests.conftest import REPO_ROOT, base_definition

runner = CliRunner()

# The process dies exactly inside the crash window: the file is written, the registry's
# transaction never starts. os._exit skips every handler, like a SIGKILL would.
CRASH_DURING_REGISTER = textwrap.dedent(
    """
    import os, sys
    from featurestore_dagster.registry import Registry
    Registry.register = lambda *args, **kwargs: os._exit(137)
    from featurestore_dagster.cli.app import app
    app(sys.argv[1:])
    """
)


def run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def crash(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CRASH_DURING_REGISTER, *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def versions(env):
    result = run(env, "versions", "close_price", "--json")
    assert result.exit_code == 0, result.output
    return {v["version"]: v for v in json.loads(result.stdout)}


@pytest.fixture
def crashed_rollback(definitions_folder, store_env):
    """close_price 1.0.0 (with a range rule), 1.1.0 (without), then a rollback to 1.0.0
    killed after writing the file."""
    definitions_folder.write(base_definition())
    assert run(store_env, "apply").exit_code == 0
    path = definitions_folder.write(base_definition(version="1.1.0", validation_rules=[]))
    assert run(store_env, "apply").exit_code == 0
    died = crash(store_env, "rollback", "close_price", "--to", "1.0.0", "-m", "rules needed")
    assert died.returncode == 137, died.stderr
    document = yaml.safe_load(path.read_text())
    assert document["version"] == "1.2.0" and document["validation_rules"]  # file rewritten
    assert set(versions(store_env)) == {"1.0.0", "1.1.0"}  # registry not
    return path, store_env


def test_a_retried_rollback_completes_the_interrupted_one(crashed_rollback):
    path, env = crashed_rollback
    result = run(env, "rollback", "close_price", "--to", "1.0.0", "-m", "rules needed")
    assert result.exit_code == 0, result.output
    assert "restored 1.0.0 as 1.2.0" in result.stdout
    registered = versions(env)
    assert registered["1.2.0"]["restored_from"] == "1.0.0"
    assert registered["1.2.0"]["changelog"] == "Rollback to 1.0.0: rules needed"
    assert registered["1.1.0"]["is_rolled_back"] is True
    assert yaml.safe_load(path.read_text())["version"] == "1.2.0"  # not rolled back twice
    assert run(env, "plan", "--check").exit_code == 0  # everything registered


def test_apply_after_the_crash_registers_it_as_the_rollback(crashed_rollback):
    _, env = crashed_rollback
    result = run(env, "apply")
    assert result.exit_code == 0, result.output
    registered = versions(env)
    assert registered["1.2.0"]["restored_from"] == "1.0.0"
    assert registered["1.1.0"]["is_rolled_back"] is True
    # The intent is gone: a later rollback is an ordinary one.
    result = run(env, "rollback", "close_price", "--to", "1.1.0")
    assert result.exit_code == 0, result.output
    assert versions(env)["1.3.0"]["restored_from"] == "1.1.0"


def test_an_intent_the_file_no_longer_matches_is_dropped(crashed_rollback, definitions_folder):
    path, env = crashed_rollback
    definitions_folder.write(base_definition(version="1.1.0", validation_rules=[]))  # reverted
    result = run(env, "apply")
    assert result.exit_code == 0, result.output
    assert set(versions(env)) == {"1.0.0", "1.1.0"}
    result = run(env, "rollback", "close_price", "--to", "1.0.0")
    assert result.exit_code == 0, result.output
    assert versions(env)["1.2.0"]["restored_from"] == "1.0.0"


def make_read_only(folder) -> str:
    """Make ``folder`` unwritable even for root (``chattr +i``), else by its mode."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a folder read-only as root here: {done.stderr!r}")
        return "immutable"
    folder.chmod(0o555)
    return "mode"


def make_writable(folder, how: str) -> None:
    if how == "immutable":
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    "command",
    [
        ["bump", "close_price"],
        ["rollback", "close_price", "--to", "1.0.0"],
        ["deprecate", "close_price"],
    ],
)
def test_a_read_only_definitions_folder_is_one_message(command, definitions_folder, store_env):
    path = definitions_folder.write(base_definition(status="active"))
    assert run(store_env, "apply").exit_code == 0
    if command[0] == "bump":  # an unregistered edit that needs a version
        definitions_folder.write(base_definition(status="active", validation_rules=[]))
    if command[0] == "rollback":
        definitions_folder.write(
            base_definition(status="active", version="1.1.0", validation_rules=[])
        )
        assert run(store_env, "apply").exit_code == 0
    before = path.read_text()
    how = make_read_only(definitions_folder.path)
    try:
        result = run(store_env, *command)
    finally:
        make_writable(definitions_folder.path, how)
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.stderr and str(path) in result.stderr
    assert path.read_text() == before
    assert not list(definitions_folder.root.rglob("pending/*.json"))
