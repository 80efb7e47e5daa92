"""Single-feature reads are kept per worker, never served stale: a change made through the
command line in another process shows in the very next read, whichever of the two workers
answers, on SQLite and PostgreSQL registries."""

from __future__ import annotations

import subprocess
import threading

import httpx
import yaml

from tests.api.conftest import FEATURESTORE, close_price, make_project, server_env, serving

NAME = "kc_close"
READS = 24  # fresh connections after each change: both workers answer some of them


def cli(project, env, *args: str) -> None:
    result = subprocess.run(
        [FEATURESTORE, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def fresh_reads(url: str) -> list[httpx.Response]:
    """GETs each on a new connection (so the kernel spreads them over the workers)."""
    return [httpx.get(f"{url}/api/v1/features/{NAME}", timeout=30) for _ in range(READS)]


class Reader(threading.Thread):
    """Reads the feature in a loop while the command line runs, so the workers' kept
    answers and served graphs are as fresh as they get when the change lands."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.codes = url, threading.Event(), set()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                self.codes.add(http.get(f"{self.url}/api/v1/features/{NAME}").status_code)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(30)


def change(server, env, *args: str) -> list[dict]:
    """Run the command line while reads go on; then every fresh read, as JSON."""
    with Reader(server.url) as reader:
        cli(server.project, env, *args)
    assert reader.codes == {200}
    reads = fresh_reads(server.url)
    assert {r.status_code for r in reads} == {200}
    return [r.json() for r in reads]


def test_command_line_changes_show_in_the_next_read(tmp_path, registry_url):
    project = make_project(tmp_path / "project")
    env = server_env(FEATURESTORE_REGISTRY_URL=registry_url)
    with serving(project, "--workers", "2", env=env) as server:
        with server.client() as http:
            http.post("/features", json=close_price(NAME)).raise_for_status()
        first = fresh_reads(server.url)
        etag = first[0].headers["ETag"]
        assert {r.json()["usage_count"] for r in first} == {0}
        assert {r.headers["ETag"] for r in first} == {etag}

        # A registry-only change (usage counters) by another process.
        used = change(
            server,
            env,
            *("usage", "record", "--model", "m", "--model-version", "1.0.0"),
            *("--env", "production", "--feature", f"{NAME}=0.5"),
        )
        assert {r["usage_count"] for r in used} == {1}
        again = httpx.get(f"{server.url}/api/v1/features/{NAME}", headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.headers["ETag"] != etag

        # A lifecycle change: the file and the registry.
        deprecated = change(server, env, "deprecate", NAME)
        assert {r["status"] for r in deprecated} == {"deprecated"}
        assert all(r["deprecated_at"] for r in deprecated)

        # A hand edit of the file, registered by apply.
        path = project / "feature_definitions" / f"{NAME}.yaml"
        data = yaml.safe_load(path.read_text())
        data["description"] = "Close, edited by hand"
        major, minor, patch = deprecated[0]["current_version"].split(".")
        bumped = f"{major}.{minor}.{int(patch) + 1}"
        data["version"] = bumped
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        applied = change(server, env, "apply")
        assert {(r["description"], r["current_version"]) for r in applied} == {
            ("Close, edited by hand", bumped)
        }
