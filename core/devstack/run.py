"""Start everything for development, print the URLs and logins, stop it all on Ctrl-C.

Embedded PostgreSQL, the Temporal dev server (with its Web UI) and the mail catcher are started
only when DATABASE_URL, TEMPORAL_ADDRESS or SMTP_HOST are not set; state lives under `.data/`.
"""

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from core.platform import ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".data"
LOGS = DATA / "logs"
TEMPORAL_PORT, TEMPORAL_UI_PORT = 7233, 8233
SMTP_PORT, MAILCATCHER_PORT = 1025, 8025


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a child that died: `first` seconds, doubling up to `longest`, and
    back to `first` once it had stayed up `stable` seconds."""

    first: float = 1.0
    longest: float = 30.0
    stable: float = 60.0

    def next_delay(self, previous: float | None, uptime: float) -> float:
        if previous is None or uptime >= self.stable:
            return self.first
        return min(previous * 2, self.longest)


@dataclass
class Child:
    """One supervised process: how to start it again, and where its restart stands."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    started_at: float
    delay: float | None = None  # the last restart delay (None: it never died)
    restart_at: float | None = None  # set while it is dead and waiting for its restart
    restarts: int = 0


class Stack:
    """The dev stack's processes, each in its own session (Ctrl-C reaches only the runner, which stops them in
    order). `supervise()` restarts one that died, after a short backoff, with one line on `out`."""

    def __init__(self, *, logs: Path = LOGS, cwd: Path = ROOT, backoff: Backoff | None = None,
                 out: TextIO | None = None) -> None:
        self.logs = logs
        self.cwd = cwd
        self.backoff = backoff or Backoff()
        self.out = out
        self.children: list[Child] = []

    def spawn(self, name: str, args: list[str]) -> Child:
        """Start `args` (its output appended to `<logs>/<name>.log`) and keep it running."""
        env = os.environ.copy()
        child = Child(name, args, env, self._popen(name, args, env), time.monotonic())
        self.children.append(child)
        return child

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log_file:
            # Own session: Ctrl-C reaches only us, and we stop children in order.
            return subprocess.Popen(args, cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def supervise(self) -> None:
        """One look at every child: announce and schedule the restart of one that died, restart one whose delay
        is over. Call it every half second or so."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                _kill_group(child.proc.pid)  # what it started itself (uvicorn's workers...) goes with it
                child.delay = self.backoff.next_delay(child.delay, now - child.started_at)
                child.restart_at = now + child.delay
                self._say(f"!! {child.name} s'est arrêté (code {code}) : redémarrage dans {child.delay:g} s — "
                          f"dernières lignes de {self._log_name(child.name)} : {_last_lines(self.logs, child.name)}")
            elif now >= child.restart_at:
                child.proc = self._popen(child.name, child.args, child.env)
                child.started_at, child.restart_at = time.monotonic(), None
                child.restarts += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the children one after the other, last started first (the services, then the worker, then what it
        needs): SIGTERM to its process group, SIGKILL to what is left of it after `timeout` seconds."""
        for child in reversed(self.children):
            if child.restart_at is not None:
                continue  # dead, waiting for a restart that will not come
            proc = child.proc
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout)
            _kill_group(proc.pid)  # the group's stragglers, and a child that ignored SIGTERM
            proc.wait()

    def _log_name(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return str(path.relative_to(self.cwd)) if path.is_relative_to(self.cwd) else str(path)

    def _say(self, line: str) -> None:
        print(line, file=self.out or sys.stdout, flush=True)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _last_lines(logs: Path, name: str, lines: int = 3) -> str:
    """The last non-empty lines of a child's log, on one line."""
    path = logs / f"{name}.log"
    if not path.exists():
        return "(journal vide)"
    with path.open("rb") as f:
        start = max(0, path.stat().st_size - 8192)
        f.seek(start)
        text = ANSI.sub("", f.read().decode(errors="replace"))  # the console log renderer's colours
    lines_read = text.splitlines()[1 if start else 0:]  # not the first one, cut by the seek
    tail = [line.strip() for line in lines_read if line.strip()]
    return " ⏎ ".join(tail[-lines:])[-400:] or "(journal vide)"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} ne répond pas après {timeout:.0f} s")


async def _wait_temporal(wait_seconds: float = 60.0) -> list[str]:
    from core.settings import get_settings
    from core.temporal import connect, register_search_attributes

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            client = await connect(get_settings())
            return await register_search_attributes(client)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def main(services: Sequence[ServiceSpec], *, worker_command: list[str]) -> int:
    """Everything for `services` (their apps, the worker started by `worker_command`), until Ctrl-C."""
    os.chdir(ROOT)
    LOGS.mkdir(parents=True, exist_ok=True)
    env = os.environ
    started = time.monotonic()
    stack = Stack()
    own: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill` or a closed terminal stops everything, as Ctrl-C does
        signal.signal(sig, _interrupt)
    try:
        if not env.get("DATABASE_URL"):
            from core.devstack.postgres import start_embedded

            env["DATABASE_URL"] = start_embedded(DATA / "pg")  # stops when this process exits
            own.append("PostgreSQL embarqué (.data/pg)")
        if not env.get("SMTP_HOST"):
            env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(SMTP_PORT))
            stack.spawn("mailcatcher", [sys.executable, "-m", "core.devstack.mailcatcher", "--smtp-port",
                                        str(SMTP_PORT), "--http-port", str(MAILCATCHER_PORT), "--store",
                                        str(DATA / "mail")])
            own.append("capteur de mails")
        if not env.get("TEMPORAL_ADDRESS"):
            env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{TEMPORAL_PORT}"
            temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal"
            stack.spawn("temporal", [temporal, "server", "start-dev", "--db-filename", str(DATA / "temporal.db"),
                                     "--port", str(TEMPORAL_PORT), "--ui-port", str(TEMPORAL_UI_PORT),
                                     "--log-level", "warn"])
            own.append("serveur Temporal de dev")

        from core.demo import load_demo
        from core.migrate import upgrade_head
        from core.settings import get_settings

        get_settings.cache_clear()  # read again: the services' modules were imported before the URLs above were set
        upgrade_head()
        load_demo(services)
        added = asyncio.run(_wait_temporal())
        stack.spawn("worker", worker_command)
        for spec in services:
            stack.spawn(spec.name, [sys.executable, "-m", "uvicorn", f"services.{spec.name}.app:app", "--host",
                                    "127.0.0.1", "--port", str(spec.dev_port), "--no-access-log"])
        for spec in services:
            _wait_http(f"http://127.0.0.1:{spec.dev_port}/healthz")
        if "capteur de mails" in own:
            _wait_http(f"http://127.0.0.1:{MAILCATCHER_PORT}/")
        _banner(services, time.monotonic() - started, own, added)
        while True:  # a child that dies is restarted (Stack.supervise); Ctrl-C stops everything
            stack.supervise()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nArrêt en cours…", flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not leave orphans
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        print("Tout est arrêté.", flush=True)


def _banner(services: Sequence[ServiceSpec], elapsed: float, own: list[str], added: list[str]) -> None:
    from core.demo import DEMO_PASSWORD

    rows = [(f"{spec.title}", f"http://localhost:{spec.dev_port}/") for spec in services]
    rows += [("API (OpenAPI)", "http://localhost:<port du service>/api/docs")]
    if "serveur Temporal de dev" in own:
        rows += [("Temporal Web UI", f"http://localhost:{TEMPORAL_UI_PORT}/"),
                 ("Temporal gRPC", f"127.0.0.1:{TEMPORAL_PORT}")]
    if "capteur de mails" in own:
        rows += [("Mails reçus (dev)", f"http://localhost:{MAILCATCHER_PORT}/"),
                 ("SMTP (dev)", f"127.0.0.1:{SMTP_PORT}")]
    print("\n" + "=" * 72)
    print(f"Relais est prêt en {elapsed:.1f} s ({', '.join(own) or 'tout est externe'}).")
    if added:
        print(f"Attributs de recherche Temporal enregistrés : {', '.join(added)}")
    for label, url in rows:
        print(f"  {label:<22} {url}")
    print(f"\nConnexions de démonstration (mot de passe : {DEMO_PASSWORD}) :")
    for spec in services:
        for email, full_name, org, role in spec.demo_logins:
            print(f"  {email:<36} {role:<8} {full_name} ({org})")
    keys = {org: key for spec in services for org, key in spec.demo_api_keys.items()}
    print("Clés d'API de démonstration : " + ", ".join(f"{org}: {key}" for org, key in keys.items()))
    print("Journaux : .data/logs/   ·   Ctrl-C arrête tout.")
    print("=" * 72, flush=True)
