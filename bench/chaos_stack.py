"""Starting the chaos bench's stack: every process supervised by the dev stack's own `Stack`
(`core/devstack/run.py`), so that a killed one is restarted with its backoff, as under `make run`."""

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from bench.common import ROOT, free_port, start_database
from core.devstack.run import Stack

SERVICES = ("campaigns", "removals", "notices")  # the web services of the run (uvicorn)


def worker_command(queue: str) -> list[str]:
    """The worker as deployed, one task queue per process."""
    return [sys.executable, "-m", "wiring", "worker", "--only", queue]


class LogWatch:
    """Counts a marker in a child's log, reading only what was appended."""

    def __init__(self, path: Path, marker: str) -> None:
        self.path, self.marker, self.offset, self.count = path, marker, 0, 0

    def read(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk.rfind(b"\n") + 1
            self.offset += complete
            self.count += chunk[:complete].count(self.marker.encode())
        return self.count


async def until(condition: Callable[[], bool], *, seconds: float, what: str) -> bool:
    """Poll real processes (bounded). False if `seconds` passed first."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            print(f"   (gave up waiting for {what} after {seconds:.0f} s)", flush=True)
            return False
        await asyncio.sleep(0.2)
    return True


async def temporal_up(client: Client) -> bool:
    try:
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=1))
        return True
    except Exception:
        return False


async def start_stack(tmp: Path, *, smtp_rate: float, connections: int) -> tuple[Stack, Client, dict[str, str]]:
    """Every process of the run, supervised by the dev stack's `Stack`; returns it, a Temporal client and the
    services' URLs."""
    logs = tmp / "logs"
    logs.mkdir(parents=True)
    ports = {name: free_port() for name in ("sink", "smtp", "temporal", "campaigns", "removals", "notices")}
    os.environ.update(
        ENVIRONMENT="test", SECRET_KEY="chaos-bench-secret-" + "x" * 40, LOG_FORMAT="json",
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(ports["smtp"]), SMTP_MAX_PER_SECOND=str(smtp_rate),
        SMTP_CONNECTIONS=str(connections), TEMPORAL_ADDRESS=f"127.0.0.1:{ports['temporal']}",
        CAMPAIGNS_URL=f"http://127.0.0.1:{ports['campaigns']}", REMOVALS_URL=f"http://127.0.0.1:{ports['removals']}",
        NOTICES_URL=f"http://127.0.0.1:{ports['notices']}")
    start_database()  # embedded PostgreSQL, migrated, deleted when this process exits
    stack = Stack(logs=logs, cwd=ROOT)
    stack.spawn("sink", [sys.executable, "-m", "bench.chaos_sink", "--port", str(ports["sink"]),
                         "--out", str(tmp / "received.jsonl")])
    stack.spawn("smtp-proxy", [sys.executable, "-m", "bench.chaos_proxy", "--port", str(ports["smtp"]),
                               "--target", str(ports["sink"])])
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal"
    stack.spawn("temporal", [temporal, "server", "start-dev", "--db-filename", str(tmp / "temporal.db"),
                             "--port", str(ports["temporal"]), "--headless", "--log-level", "warn"])
    from core.settings import get_settings
    from core.temporal import connect, register_search_attributes

    deadline = time.monotonic() + 60
    while True:
        try:
            client = await connect(get_settings())
            await register_search_attributes(client)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    for queue in ("main", "mail"):
        stack.spawn(f"{queue}-worker", worker_command(queue))
    for name in SERVICES:
        stack.spawn(name, [sys.executable, "-m", "uvicorn", f"services.{name}.app:app", "--host", "127.0.0.1",
                           "--port", str(ports[name]), "--no-access-log", "--log-level", "warning"])
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
    return stack, client, urls


async def wait_healthy(tick: Callable[[], None], urls: dict[str, str], workers: dict[str, LogWatch]) -> None:
    """Until every service answers /healthz and both workers logged their start (`tick` keeps the stack
    supervised meanwhile)."""
    async with httpx.AsyncClient(timeout=2) as http:
        for url in urls.values():
            async def up(url: str = url) -> bool:
                try:
                    return (await http.get(f"{url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            deadline = time.monotonic() + 60
            while not await up():
                tick()
                assert time.monotonic() < deadline, f"{url} does not answer"
                await asyncio.sleep(0.2)
    def workers_started() -> bool:
        tick()
        return all(w.read() for w in workers.values())

    assert await until(workers_started, seconds=60, what="both workers to start"), "the workers did not start"
