"""Removals test data: fresh requesters (with equipped vehicles) and deposers (with a user and an API key),
Excel files in the seed's format, and requests created through the service (no HTTP)."""

import asyncio
import inspect
import io
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any
from uuid import uuid4

from openpyxl import Workbook
from sqlalchemy.dialects.postgresql import insert
from temporalio.client import Client
from temporalio.service import RPCError

from core.db import session_scope
from core.models import Organisation, User
from core.security import create_api_key, hash_password
from services.removals.models import Account, TrackedVehicle
from services.removals.service import upload
from tests.support.smtp import body_text

PASSWORD = "relais-demo"
PASSWORD_HASH = hash_password(PASSWORD)  # argon2 costs half a second: hash once for every test user
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LINK = re.compile(r"(http://\S+/liens/(accepter|refuser|signaler|accepter-tout)/\S+)")


@dataclass
class Requester:
    id: int
    slug: str
    name: str
    code: str
    email: str
    vins: list[str]
    subscriptions: dict[str, str]


@dataclass
class Deposer:
    id: int
    code: str
    name: str
    email: str  # notification address, also the extranet login
    api_key: str


def _tag() -> str:
    return uuid4().hex[:8]


def make_requester(vehicles: int = 4) -> Requester:
    """A requester ("tracker") with a manager and `vehicles` active subscriptions (bulk-inserted)."""
    tag = _tag()
    with session_scope() as session:
        org = Organisation(slug=f"loueur-{tag}", name=f"Loueur {tag.upper()}", kind="tracker")
        session.add(org)
        session.flush()
        code = f"R{tag[:6].upper()}"
        session.add(Account(organisation_id=org.id, code=code))
        email = f"gestionnaire@loueur-{tag}.example"
        session.add(User(organisation_id=org.id, email=email, full_name="Stanislas Fifis", role="manager",
                         password_hash=PASSWORD_HASH))
        rows: list[dict[str, Any]] = [
            {"organisation_id": org.id, "vin": f"WBA{uuid4().hex[:14].upper()}", "marque": "BMW", "modele": "SERIE 1",
             "subscription_no": f"{n:06d}C{tag[:2].upper()}", "subscription_status": "active"}
            for n in range(vehicles)]
        for start in range(0, len(rows), 5000):
            session.execute(insert(TrackedVehicle), rows[start:start + 5000])
        return Requester(org.id, org.slug, org.name, code, email, [r["vin"] for r in rows],
                         {r["vin"]: r["subscription_no"] for r in rows})


def make_deposer() -> Deposer:
    """A deposer ("mandataire") with its distributor code, notification address, extranet user and API key."""
    tag = _tag()
    with session_scope() as session:
        org = Organisation(slug=f"depot-{tag}", name=f"DEPOT {tag.upper()}", kind="deposer")
        session.add(org)
        session.flush()
        code = f"D{tag[:5].upper()}"
        email = f"depot@{tag}.example"
        session.add(Account(organisation_id=org.id, code=code, email=email))
        session.add(User(organisation_id=org.id, email=email, full_name=f"Technicien {tag}", role="manager",
                         password_hash=PASSWORD_HASH))
        _key, raw = create_api_key(session, organisation_id=org.id, name=f"Clé {tag}")
        return Deposer(org.id, code, org.name, email, raw)


def line(requester: Requester, vin: str, deposer: Deposer | str, *, lieu: str = "Chambery",
         when: object = None, comment: str | None = None) -> list[object]:
    code = deposer if isinstance(deposer, str) else deposer.code
    return [vin, requester.subscriptions.get(vin, "000000X"), code, lieu,
            when if when is not None else date.today().replace(year=date.today().year + 1), comment]


def xlsx(*rows: Sequence[object], headers: Sequence[object] | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Déposes juillet"
    for row in ([list(headers if headers is not None else upload.HEADERS)] + [list(r) for r in rows]):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def create_request(requester: Requester, rows: list[list[object]], today: date | None = None) -> tuple[int, int]:
    """Request #N through the service, as "Confirmer" would: (request id, number). Starts no workflow."""
    today = today or date.today()
    with session_scope() as session:
        user = session.query(User).filter_by(email=requester.email).one()
        lines = upload.check_upload(session, organisation_id=requester.id, data=xlsx(*rows), today=today)
        upload_id = upload.save_pending(session, user=user, filename="test.xlsx", description="Test", lines=lines,
                                        tracking_email=f"suivi@{requester.slug}.example")
        request, _ = upload.confirm(session, user=user, upload_id=upload_id, today=today)
        return request.id, request.number


@dataclass
class MailLinks:
    """The links of a deposer's notification mail, by VIN (and "Accepter tout")."""

    by_vin: dict[str, dict[str, str]] = field(default_factory=dict)
    accept_all: str = ""


def links_of(mail: EmailMessage) -> MailLinks:
    result = MailLinks()
    vin = None
    for text_line in body_text(mail).splitlines():
        if match := re.search(r"VIN (\w{17})", text_line):
            vin = match.group(1)
        for url, kind in LINK.findall(text_line):
            if kind == "accepter-tout":
                result.accept_all = url
            elif vin:
                result.by_vin.setdefault(vin, {})[kind] = url
    return result


def subject(mail: EmailMessage) -> str:
    """The decoded subject (long non-ASCII subjects come back folded with a leading space)."""
    return str(mail["Subject"]).strip()


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 15.0) -> None:
    """Wait for something another process does (a mail leaving, a row written, a signal reaching a workflow);
    `check` may be a coroutine function. Fails after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def engine_status(client: Client, workflow_id: str) -> str | None:
    """The status the mandate's workflow holds (None while it does not exist)."""
    try:
        return str(await client.get_workflow_handle(workflow_id).query("current_status"))
    except RPCError:
        return None
