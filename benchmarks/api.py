"""REST API load benchmark: a real ``featurestore serve`` on loopback, a bounded asyncio
load generator (keep-alive connections, uvloop when installed), latencies per request.

    uv run python benchmarks/api.py                         # SQLite registry, 2 workers
    uv run python benchmarks/api.py --workers 1 --clients 32 --requests 4000

What it measures:

- floor: ``GET /healthz`` (no store work) with the same concurrency, so every latency is
  also reported as a ratio to the floor measured in the same run;
- usage posts: ``POST /api/v1/features/usage``, single records and model runs of
  ``--run-features`` features, from ``--clients`` concurrent clients; records/s, p50/p99, and
  the exact count afterwards (the registry's statistics must equal the records posted);
- ``GET /api/v1/features/{name}`` with 32 concurrent clients: p50/p99;
- ``POST /api/v1/online-features`` with 32 concurrent clients when the server offers it
  (latest tables of 1,000 symbols written into the lake; each worker's first request, which
  opens its lake reader, is timed apart as ``online_first_requests_seconds``).

Every step also reports the server's CPU per request (its worker processes, from /proc) and
the load generator's own, so a run on a busy machine still says what the server costs.

Targets (2 cores): >= 1,000 usage records/s, p99 < 50 ms for single-feature reads and
latest values, no record lost. Prints a table, then JSON (also written to
``benchmarks/results/api.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurestore_dagster.store import FeatureStore  # noqa: E402

FEATURESTORE = shutil.which("featurestore", path=str(Path(sys.executable).parent)) or "featurestore"
TOKEN = "bench-write-token-0123456789"
ONLINE_FEATURES = 5  # features per POST /online-features
SYMBOLS = 1000  # entities in each latest table


def run_async(coroutine):
    """The load generator's event loop: uvloop (installed with uvicorn) when present."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def definition(name: str, upstream: str | None) -> dict:
    if upstream is None:
        code = f"SELECT symbol, date, close AS {name} FROM raw.prices"
        reads = {"sources": ["raw.prices"]}
    else:
        code = f"SELECT symbol, date, {upstream} * 2 AS {name} FROM features.{upstream}"
        reads = {"upstream_features": [upstream]}
    return {
        "feature_name": name,
        "version": "1.0.0",
        "feature_type": "raw" if upstream is None else "derived",
        "data_type": "float",
        "status": "active",
        "description": f"Benchmark feature {name}",
        "owner": "bench-team",
        "tags": ["bench"],
        "entity_columns": ["symbol"],
        "timestamp_column": "date",
        **reads,
        "transformation": {"transformation_type": "sql", "code": code},
        "validation_rules": [{"rule_type": "range", "parameters": {"min": 0}, "is_blocking": True}],
    }


def make_project(root: Path, features: int, registry_url: str | None) -> list[str]:
    """A project with ``features`` registered features (a chain of ten-long branches)."""
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\n\n[tool.featurestore]\n')
    folder = root / "feature_definitions"
    folder.mkdir()
    names = []
    for index in range(features):
        name = f"bench_f{index:04d}"
        upstream = None if index % 10 == 0 else names[-1]
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(definition(name, upstream)))
        names.append(name)
    state = root / ".featurestore"  # where ``featurestore serve`` in ``root`` looks too
    store = FeatureStore(
        definitions_path=folder,
        registry_url=registry_url or f"sqlite:///{state / 'registry.db'}",
        lake_catalog=f"sqlite:{state / 'lake.sqlite'}",
        lake_data=state / "lake",
    )
    store.apply()
    publish_latest(store, names[:ONLINE_FEATURES])
    return names


def publish_latest(store: FeatureStore, names: list[str]) -> None:
    """Feature tables and their latest-value tables (one row per symbol) in the lake, as a
    publish leaves them, for ``POST /online-features``."""
    from featurestore_dagster.storage.lake import open_lake

    conn = open_lake(store.settings)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS features")
        conn.execute("CREATE SCHEMA IF NOT EXISTS _latest")
        for name in names:
            conn.execute(
                f"CREATE OR REPLACE TABLE features.{name} AS SELECT 'S' || lpad(s::VARCHAR, 4,"
                f" '0') AS symbol, DATE '2024-01-01' + d::INTEGER AS date, random() AS {name}"
                f" FROM range({SYMBOLS}) a(s), range(30) b(d)"
            )
            conn.execute(
                f"CREATE OR REPLACE TABLE _latest.{name} AS SELECT * FROM features.{name}"
                " QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1"
            )
    finally:
        conn.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo.extend(int(child) for child in task.read_text().split())
    return found


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server's processes (Linux /proc)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    root: Path, workers: int, registry_url: str | None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURESTORE_")}
    env.update(FEATURESTORE_BOOTSTRAP="", FEATURESTORE_API_TOKENS=f"{TOKEN}:write")
    if registry_url:
        env["FEATURESTORE_REGISTRY_URL"] = registry_url
    process = subprocess.Popen(
        [
            FEATURESTORE,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / "serve.log").open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"serve did not start: {(root / 'serve.log').read_text()}")


def measure(pid: int, url: str, clients: int, requests: list) -> dict:
    """``load`` plus the server CPU it cost (ms per request), which the machine's other
    load does not change much: the server's capacity on idle cores is cores / that."""
    cpu, mine = server_cpu_seconds(pid), os.times()
    result = run_async(load(url, clients, requests))
    spent = server_cpu_seconds(pid) - cpu
    client = (os.times().user - mine.user) + (os.times().system - mine.system)
    result["server_cpu_ms_per_request"] = round(1000 * spent / max(1, result["requests"]), 3)
    result["client_cpu_ms_per_request"] = round(1000 * client / max(1, result["requests"]), 3)
    # What the server alone could answer per second with every core to itself.
    result["capacity_per_second"] = round((os.cpu_count() or 1) * result["requests"] / spent, 0)
    return result


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for these
    requests (Content-Length bodies, chunked answers). A load generator must not need more
    CPU than the server it measures: httpx spent ~4 ms of client CPU per request here, more
    than the server, on a machine with two cores for both."""

    def __init__(self, url: str):
        address = url.removeprefix("http://")
        self.host, _, port = address.partition(":")
        self.port = int(port or 80)
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write((head + "\r\n").encode() + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        code = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
        if chunked:
            while size := int((await self.reader.readline()).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return code

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(url: str, clients: int, requests: list[tuple[str, str, dict | None]]) -> dict:
    """Send ``requests`` (method, path, json) from ``clients`` concurrent connections."""
    queue: asyncio.Queue = asyncio.Queue()
    for method, path, body in requests:
        queue.put_nowait((method, path, None if body is None else json.dumps(body).encode()))
    latencies: list[float] = []
    codes: dict[int | str, int] = {}
    connections = [Connection(url) for _ in range(clients)]

    async def worker(connection: Connection) -> None:
        while True:
            try:
                method, path, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                code = await connection.request(method, path, body)
            except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                code = type(error).__name__  # counted, not fatal: the count shows it
                connection.close()
            latencies.append(time.perf_counter() - started)
            codes[code] = codes.get(code, 0) + 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "mean_ms": round(1000 * statistics.fmean(latencies), 2),
        "codes": codes,
    }


def usage_requests(names: list[str], count: int, run_features: int) -> tuple[list, int]:
    requests, records = [], 0
    for index in range(count):
        if run_features <= 1:
            body = {
                "feature_name": names[index % len(names)],
                "used_by_model": f"model_{index % 7}",
                "model_version": "1.0.0",
                "environment": "production",
                "feature_importance": 0.5,
                "correlation_with_target": 0.1,
            }
            records += 1
        else:
            chosen = [names[(index + k) % len(names)] for k in range(run_features)]
            body = {
                "used_by_model": f"model_{index % 7}",
                "model_version": "1.0.0",
                "environment": "production",
                "features": {name: 0.5 for name in chosen},
                "execution_id": f"run-{index}",
            }
            records += run_features
        requests.append(("POST", "/api/v1/features/usage", body))
    return requests, records


def counted(url: str, names: list[str]) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        return sum(
            http.get(f"/api/v1/features/{n}/statistics").json()["total_usage"] for n in names
        )


def online_requests(names: list[str], count: int) -> list:
    """Latest values of ``ONLINE_FEATURES`` features for two symbols a request."""
    return [
        (
            "POST",
            "/api/v1/online-features",
            {
                "features": names[:ONLINE_FEATURES],
                "entity_rows": [{"symbol": f"S{(i * 7 + k) % SYMBOLS:04d}"} for k in range(2)],
            },
        )
        for i in range(count)
    ]


def online_available(url: str) -> bool:
    document = httpx.get(f"{url}/openapi.json").json()
    return "/api/v1/online-features" in document["paths"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="per measured step")
    parser.add_argument("--run-features", type=int, default=10, help="features per model run")
    parser.add_argument("--registry-url", help="default: a SQLite file in the project")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fs-api-bench-") as folder:
        root = Path(folder)
        names = make_project(root, args.features, args.registry_url)
        process, url = start_server(root, args.workers, args.registry_url)
        try:
            results = run(process.pid, url, names, args)
        finally:
            process.terminate()
            process.wait(30)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    results["load_average"] = [round(x, 1) for x in os.getloadavg()]
    report(results)


def run(pid: int, url: str, names: list[str], args) -> dict:
    clients, count = args.clients, args.requests
    warm = [("GET", f"/api/v1/features/{n}", None) for n in names]
    warm += [("GET", "/healthz", None)] * 200
    offers_online = online_available(url)
    if offers_online:
        # Each worker opens its lake reader and loads the latest tables on its first
        # request (~1 s); measured apart: steady state is what the steps below report.
        started = time.perf_counter()
        run_async(load(url, 2 * args.workers, online_requests(names, 2 * args.workers)))
        cold = round(time.perf_counter() - started, 3)
        warm += online_requests(names, 200)
    run_async(load(url, clients, warm))
    results: dict = {"settings": vars(args)}
    if offers_online:
        results["online_first_requests_seconds"] = cold
    results["floor_healthz"] = measure(pid, url, clients, [("GET", "/healthz", None)] * count)
    reads = [("GET", f"/api/v1/features/{names[i % len(names)]}", None) for i in range(count)]
    results["get_feature"] = measure(pid, url, clients, reads)

    before = counted(url, names)
    posted = 0
    for label, per_run in (("usage_single", 1), ("usage_model_run", args.run_features)):
        requests, records = usage_requests(names, count, per_run)
        step = measure(pid, url, clients, requests)
        accepted = step["codes"].get(201, 0)
        step["records_posted"] = accepted * per_run
        step["records_per_second"] = round(accepted * per_run / step["seconds"], 1)
        posted += accepted * per_run
        results[label] = step
    after = counted(url, names)
    results["usage_count"] = {
        "posted": posted,
        "counted": after - before,
        "lost": posted - (after - before),
    }

    if offers_online:
        results["online_features"] = measure(pid, url, clients, online_requests(names, count))
    floor = results["floor_healthz"]["p99_ms"]
    for key in ("get_feature", "usage_single", "usage_model_run", "online_features"):
        if key in results:
            results[key]["p99_ratio_to_floor"] = round(results[key]["p99_ms"] / floor, 2)
    return results


def report(results: dict) -> None:
    rows = [
        (
            "step",
            "req/s",
            "records/s",
            "p50 ms",
            "p99 ms",
            "p99 / floor",
            "server CPU ms/req",
            "client CPU ms/req",
            "capacity req/s",
            "codes",
        )
    ]
    for key in (
        "floor_healthz",
        "get_feature",
        "usage_single",
        "usage_model_run",
        "online_features",
    ):
        step = results.get(key)
        if step is None:
            rows.append((key, *["-"] * 8, "not offered by this server"))
            continue
        rows.append(
            (
                key,
                f"{step['per_second']:,.0f}",
                f"{step.get('records_per_second', 0):,.0f}"
                if "records_per_second" in step
                else "-",
                f"{step['p50_ms']:.1f}",
                f"{step['p99_ms']:.1f}",
                f"{step.get('p99_ratio_to_floor', 1.0):.2f}",
                f"{step['server_cpu_ms_per_request']:.2f}",
                f"{step['client_cpu_ms_per_request']:.2f}",
                f"{step['capacity_per_second']:,.0f}",
                json.dumps(step["codes"]),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    count = results["usage_count"]
    print(
        f"usage records posted {count['posted']}, counted {count['counted']}, lost {count['lost']}"
    )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
