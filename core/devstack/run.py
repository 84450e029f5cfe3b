"""Start everything for development, print the URLs and logins, stop it all on Ctrl-C.

Embedded PostgreSQL, the Temporal dev server (with its Web UI) and the mail catcher are started
only when DATABASE_URL, TEMPORAL_ADDRESS or SMTP_HOST are not set; state lives under `.data/`.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".data"
LOGS = DATA / "logs"
SERVICES = {"campaigns": 8001, "notices": 8002, "removals": 8003, "interventions": 8004}
TEMPORAL_PORT, TEMPORAL_UI_PORT = 7233, 8233
SMTP_PORT, MAILCATCHER_PORT = 1025, 8025


class Stack:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str]) -> None:
        log_file = (LOGS / f"{name}.log").open("ab")
        # Own session: Ctrl-C reaches only us, and we stop children in order.
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True, env=os.environ.copy())
        self.children.append((name, proc))

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def dead_child(self) -> str | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return name
        return None


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


def _tail(name: str, lines: int = 25) -> str:
    path = LOGS / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def main() -> int:
    os.chdir(ROOT)
    LOGS.mkdir(parents=True, exist_ok=True)
    env = os.environ
    started = time.monotonic()
    stack = Stack()
    own: list[str] = []
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

        upgrade_head()
        load_demo()
        added = asyncio.run(_wait_temporal())
        stack.spawn("worker", [sys.executable, "-m", "core.worker"])
        for name, port in SERVICES.items():
            stack.spawn(name, [sys.executable, "-m", "uvicorn", f"services.{name}.app:app", "--host", "127.0.0.1",
                               "--port", str(port), "--no-access-log"])
        for port in SERVICES.values():
            _wait_http(f"http://127.0.0.1:{port}/healthz")
        if "capteur de mails" in own:
            _wait_http(f"http://127.0.0.1:{MAILCATCHER_PORT}/")
        _banner(time.monotonic() - started, own, added)
        while (dead := stack.dead_child()) is None:
            time.sleep(0.5)
        print(f"\n!! {dead} s'est arrêté. Dernières lignes de .data/logs/{dead}.log :\n{_tail(dead)}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nArrêt en cours…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        stack.stop()
        print("Tout est arrêté.", flush=True)


def _banner(elapsed: float, own: list[str], added: list[str]) -> None:
    from core.demo import API_KEYS, DEMO_PASSWORD, USERS

    rows = [(f"Service {name}", f"http://localhost:{port}/") for name, port in SERVICES.items()]
    rows += [("API (OpenAPI)", f"http://localhost:{SERVICES['campaigns']}/api/docs")]
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
    from services.removals.demo import API_KEYS as REMOVAL_KEYS
    from services.removals.demo import USERS as REMOVAL_USERS

    for email, full_name, org, role in [*USERS, *REMOVAL_USERS]:
        print(f"  {email:<36} {role:<8} {full_name} ({org})")
    keys = {**API_KEYS, **REMOVAL_KEYS}
    print("Clés d'API de démonstration : " + ", ".join(f"{org}: {key}" for org, key in keys.items()))
    print("Journaux : .data/logs/   ·   Ctrl-C arrête tout.")
    print("=" * 72, flush=True)
