"""Shared set-up for the benchmarks: embedded PostgreSQL, the Temporal dev server, smtp-sink, the worker."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    """Postfix's smtp-sink: a fast C sink that accepts and discards everything."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        raise SystemExit("smtp-sink introuvable : apt-get install postfix (il fournit /usr/sbin/smtp-sink)")
    proc = subprocess.Popen([binary, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


@dataclass(frozen=True)
class Load:
    """What wrk measured: latencies in seconds."""

    requests: int
    non_2xx: int
    errors: int
    seconds: float
    p50: float
    p99: float
    max: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (f"{self.requests} requests in {self.seconds:.1f} s ({self.per_second:.0f}/s): "
                f"p50 {self.p50 * 1000:.0f} ms, p99 {self.p99 * 1000:.0f} ms, max {self.max * 1000:.0f} ms")


def wrk(url: str, *, clients: int, seconds: float = 10, paths: list[str] | None = None, think_ms: int = 0) -> Load:
    """Debian's wrk (C, one thread: it takes little of the CPU the server needs) against `url` for `seconds` from
    `clients` connections: GET, or with `paths`, POST each path once in turn (single-use links; if they run out
    first, wrk stops sending and `requests` says how many were sent), each connection pausing `think_ms` after
    each answer."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk introuvable : apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        command = [binary, "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s",
                   "-s", str(ROOT / "bench" / "wrk.lua"), url]
        if paths:
            listing.write("\n".join(paths) + "\n")
            listing.flush()
            command += ["--", listing.name, str(think_ms)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"WRK requests=(\d+) non2xx=(\d+) errors=(\d+) seconds=([\d.]+) p50=(\d+) p99=(\d+) max=(\d+)",
                      output)
    if not found:
        raise RuntimeError(f"wrk: sortie inattendue\n{output}")
    requests, non_2xx, errors = (int(found.group(i)) for i in (1, 2, 3))
    seconds, p50, p99, worst = (float(found.group(i)) for i in (4, 5, 6, 7))
    return Load(requests, non_2xx, errors, seconds, p50 / 1e6, p99 / 1e6, worst / 1e6)


def start_database() -> str:
    """A throw-away embedded PostgreSQL, migrated; sets DATABASE_URL for the project's settings."""
    from core.devstack.postgres import start_embedded

    url = start_embedded(Path(tempfile.mkdtemp(prefix="relais-bench-")) / "pg", on_exit="delete")
    os.environ["DATABASE_URL"] = url
    from core.migrate import upgrade_head

    upgrade_head()
    return url


@asynccontextmanager
async def temporal_and_workers(background_nice: int = 0) -> AsyncIterator[object]:
    """The dev server, and the project's worker as deployed: `python -m wiring worker --only main` and
    `--only mail`, two processes, so that rendering and SMTP each get a CPU core. `background_nice` lowers the
    CPU priority of all three (an experiment: the web services answer first)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from core.temporal import SEARCH_ATTRIBUTES

    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal"
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal,
                                                data_converter=pydantic_data_converter,
                                                search_attributes=SEARCH_ATTRIBUTES)
    os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    workers = [subprocess.Popen([sys.executable, "-m", "wiring", "worker", "--only", queue], cwd=ROOT,
                                env=os.environ.copy(), stderr=subprocess.DEVNULL) for queue in ("main", "mail")]
    env.client.worker_pids = {"main": workers[0].pid, "mail": workers[1].pid}  # type: ignore[attr-defined]
    if background_nice:
        import psutil

        server = [p.pid for p in psutil.Process().children(recursive=True) if p.name() == "temporal"]
        for pid in [*server, *(w.pid for w in workers)]:
            os.setpriority(os.PRIO_PROCESS, pid, background_nice)
    try:
        yield env.client
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(20)
        await env.shutdown()
