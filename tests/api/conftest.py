"""A real ``featurestore serve`` process on a free loopback port, over a project in tmp."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import base_definition

FEATURESTORE = shutil.which("featurestore", path=str(Path(sys.executable).parent)) or "featurestore"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(root: Path) -> Path:
    """An empty project: ``pyproject.toml`` with ``[tool.featurestore]`` and a definitions
    folder (the registry and lake go under ``.featurestore/`` by default)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "api-test"\n\n[tool.featurestore]\n')
    (root / "feature_definitions").mkdir(exist_ok=True)
    return root


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURESTORE_")}
    env["FEATURESTORE_BOOTSTRAP"] = ""
    env.update(extra)
    return env


class Server:
    """``featurestore serve`` in ``project``; ``url`` once it answers ``/healthz``."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None):
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"serve-{self.port}.log"
        command = [FEATURESTORE, "serve", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command,
            cwd=project,
            env=env or server_env(),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}: {self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not answer within {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def serving(project: Path, *args: str, env: dict[str, str] | None = None):
    server = Server(project, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


def definitions_state(folder: Path) -> dict[str, bytes]:
    """Every file under the definitions folder with its bytes (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def close_price(name: str = "close_price", **overrides: Any) -> dict[str, Any]:
    """A raw feature reading ``raw.prices`` (the shared base definition, renamed)."""
    payload = base_definition(feature_name=name, **overrides)
    payload["transformation"] = {
        "transformation_type": "sql",
        "code": f"SELECT symbol, date, close AS {name} FROM raw.prices",
    }
    return payload


def derived(name: str, upstream: str, **overrides: Any) -> dict[str, Any]:
    """A feature computed from ``upstream``."""
    payload = base_definition(
        feature_name=name,
        feature_type="derived",
        sources=[],
        upstream_features=[upstream],
        transformation={
            "transformation_type": "sql",
            "code": f"SELECT symbol, date, {upstream} * 2 AS {name} FROM features.{upstream}",
        },
    )
    payload.update(overrides)
    return payload


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One server (no tokens, loopback) for the module; tests use their own feature names."""
    project = make_project(tmp_path_factory.mktemp("api"))
    with serving(project) as server:
        yield server


@pytest.fixture
def client(api):
    with api.client() as http:
        yield http
