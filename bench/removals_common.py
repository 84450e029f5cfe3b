"""Set-up for the removals benchmark: seed a requester and its deposers, run the service, upload the file,
wait for the worker to drain, and the floor: a no-op update on the same server."""

import asyncio
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.common import ROOT


def seed(vehicles: int, deposers: int) -> tuple[str, bytes]:
    """A requester with `vehicles` subscriptions, `deposers` deposers; returns its login and the request file."""
    from openpyxl import Workbook
    from sqlalchemy.dialects.postgresql import insert

    from core.db import session_scope
    from core.models import Organisation, User
    from core.security import hash_password
    from services.removals.models import Account, TrackedVehicle
    from services.removals.service.upload import HEADERS

    password = hash_password("relais-demo")
    with session_scope() as session:
        requester = Organisation(slug="bench-loueur", name="Bench Loueur", kind="tracker")
        session.add(requester)
        session.flush()
        session.add(Account(organisation_id=requester.id, code="BENCH0"))
        session.add(User(organisation_id=requester.id, email="bench@loueur.example", full_name="Bench",
                         password_hash=password))
        codes = []
        for n in range(deposers):
            org = Organisation(slug=f"bench-depot-{n}", name=f"DEPOT {n}", kind="deposer")
            session.add(org)
            session.flush()
            codes.append(f"BD{n:03d}")
            session.add(Account(organisation_id=org.id, code=codes[-1], email=f"depot{n}@bench.example"))
        rows = [{"organisation_id": requester.id, "vin": f"WBA{n:014d}", "marque": "BMW", "modele": "SERIE 1",
                 "subscription_no": f"{n:06d}C28", "subscription_status": "active"} for n in range(vehicles)]
        session.execute(insert(TrackedVehicle), rows)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Déposes")
    sheet.append(HEADERS)
    when = date.today() + timedelta(days=30)
    for n, row in enumerate(rows):
        sheet.append([row["vin"], row["subscription_no"], codes[n % deposers], "Chambery", when, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return "bench@loueur.example", buffer.getvalue()


@contextmanager
def removals_service(port: int, workers: int = 1) -> Iterator[str]:
    """The removals service in its own uvicorn process(es), as deployed."""
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.removals.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning", "--no-access-log",
                             "--workers", str(workers)],
                            cwd=ROOT, env=os.environ.copy())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


async def wait_for_idle(client: Client, task_queue: str) -> float:
    """Wait until the task queue has no workflow task backlog (the mandates' first tasks are done)."""
    started = time.perf_counter()
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, report_stats=True)
    quiet = 0
    while quiet < 3:
        described = await client.workflow_service.describe_task_queue(request)
        quiet = quiet + 1 if described.stats.approximate_backlog_count == 0 else 0
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def upload_file(http: httpx.AsyncClient, data: bytes) -> tuple[str, float]:
    """Upload the file through "Créer une demande de dépose"; returns the pending upload id and the time taken."""
    page = await http.get("/demandes/nouvelle")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    started = time.perf_counter()
    posted = await http.post("/demandes/nouvelle", data={"csrf_token": token.group(1),
                                                         "tracking_email": "suivi@loueur.example"},
                             files={"fichier": ("bench.xlsx", data, "application/octet-stream")})
    assert posted.status_code == 303, posted.text[-2000:]
    return posted.headers["location"].rsplit("/", 1)[1], time.perf_counter() - started
