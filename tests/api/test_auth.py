"""Bearer tokens and roles, anonymous reads, and the loopback rule, against real servers."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from featurestore_dagster.api.auth import AuthConfigError, load_tokens
from tests.api.conftest import FEATURESTORE, close_price, make_project, server_env, serving

READ_TOKEN = "r3ad-t0ken-0123456789abcdef"
WRITE_TOKEN = "wr1te-t0ken-fedcba9876543210"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("auth"))
    env = server_env(FEATURESTORE_API_TOKENS=f"{READ_TOKEN}:read, {WRITE_TOKEN}:write")
    with serving(project, env=env) as server:
        yield server


def test_reads_need_a_token_writes_need_the_write_role(guarded):
    with guarded.client() as anonymous:
        missing = anonymous.get("/features")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in missing.json()["detail"]
        assert anonymous.post("/features", json=close_price("au_x")).status_code == 401
    with guarded.client("not-a-token") as wrong:
        assert wrong.get("/features").status_code == 401
    with guarded.client(READ_TOKEN) as reader:
        assert reader.get("/features").status_code == 200
        refused = reader.post("/features", json=close_price("au_read"))
        assert refused.status_code == 403 and "write" in refused.json()["detail"]
        assert reader.post("/features/usage", json={}).status_code == 403
        assert reader.get("/features/au_read").status_code == 404
    with guarded.client(WRITE_TOKEN) as writer:
        assert writer.post("/features", json=close_price("au_write")).status_code == 201
        assert writer.get("/features/au_write").status_code == 200
    # The process answers health checks without a token; the API's own needs one.
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200
    assert httpx.get(f"{guarded.url}/api/v1/healthz").status_code == 401


def test_a_basic_or_malformed_authorization_header_is_401(guarded):
    for header in ("Basic dXNlcjpwYXNz", "Bearer", f"Token {READ_TOKEN}", READ_TOKEN):
        response = httpx.get(f"{guarded.url}/api/v1/features", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_tokens_are_never_logged(guarded):
    with guarded.client(READ_TOKEN) as reader:
        reader.post("/features", json=close_price("au_log"))
    with guarded.client(WRITE_TOKEN + "x") as wrong:
        wrong.get("/features")
    output = guarded.output()
    assert "read and 1 write token" in output
    assert READ_TOKEN not in output and WRITE_TOKEN not in output


def test_anonymous_read_and_a_token_file(tmp_path):
    project = make_project(tmp_path / "project")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# team tokens\n{WRITE_TOKEN}:write\n")
    env = server_env(FEATURESTORE_API_TOKENS_FILE=str(tokens))
    with serving(project, "--anonymous-read", env=env) as server:
        with server.client() as anonymous:
            assert anonymous.get("/features").status_code == 200
            assert anonymous.post("/features", json=close_price("an_x")).status_code == 401
        with server.client(WRITE_TOKEN) as writer:
            assert writer.post("/features", json=close_price("an_x")).status_code == 201
        with server.client() as anonymous:
            assert anonymous.get("/features/an_x").json()["current_version"] == "1.0.0"


def run_serve(project, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FEATURESTORE, "serve", "--port", "1", *args],
        cwd=project,
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_tokens_a_non_loopback_host_is_refused(tmp_path):
    project = make_project(tmp_path)
    result = run_serve(project, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0" in result.stderr
    assert "FEATURESTORE_API_TOKENS" in result.stderr


@pytest.mark.parametrize(
    "value,message",
    [
        (f"{READ_TOKEN}:admin", "role 'admin'"),
        (f"{READ_TOKEN}", "is not 'token:role'"),
        (":write", "is not 'token:role'"),
    ],
)
def test_bad_token_configuration_is_refused_without_echoing_it(value, message):
    with pytest.raises(AuthConfigError) as caught:
        load_tokens({"FEATURESTORE_API_TOKENS": value})
    assert message in str(caught.value) and READ_TOKEN not in str(caught.value)


def test_token_pairs_and_constant_time_lookup(tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("a:b:write  # a token may hold ':'\n\n")
    table = load_tokens(
        {
            "FEATURESTORE_API_TOKENS": "x:read,y:write",
            "FEATURESTORE_API_TOKENS_FILE": str(tokens_file),
        }
    )
    assert [table.role_of(t) for t in ("x", "y", "a:b", "z", "")] == [
        "read",
        "write",
        "write",
        None,
        None,
    ]
    assert repr(table) == "TokenTable(1 read and 2 write token(s); reads need a token)"


def test_bad_tokens_stop_serve_at_start(tmp_path):
    result = run_serve(make_project(tmp_path), FEATURESTORE_API_TOKENS=f"{READ_TOKEN}:admin")
    assert result.returncode == 2 and "role 'admin'" in result.stderr
    assert READ_TOKEN not in result.stderr
    with pytest.raises(AuthConfigError, match="cannot read"):
        load_tokens({"FEATURESTORE_API_TOKENS_FILE": str(tmp_path / "no")})
