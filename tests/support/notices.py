"""Notices test data and server: a fresh broker (users, API key, legal entities), batches saved through the service,
Excel files in the import's format, the notices app on a real port, and the text of a PDF (pdftotext)."""

import io
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import uuid4

import httpx
import pytest
from openpyxl import Workbook

from core.db import session_scope
from core.models import Organisation, User
from core.security import create_api_key, hash_password
from services.notices.models import LegalEntity
from services.notices.service import records
from services.notices.service.imports import headers
from tests.support.smtp import free_port

PASSWORD = "relais-demo"
PASSWORD_HASH = hash_password(PASSWORD)  # argon2 costs half a second: hash once for every test user
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Broker:
    id: int
    slug: str
    manager: str
    admin: str
    viewer: str
    api_key: str
    entities: dict[str, int] = field(default_factory=dict)  # code → id


def make_broker(*, kind: str = "broker", entity_codes: Sequence[str] = ("SIEGE",)) -> Broker:
    """An organisation with a manager, an admin, a viewer, an API key and legal entities (no TVA number)."""
    tag = uuid4().hex[:8]
    with session_scope() as session:
        org = Organisation(slug=f"courtier-{tag}", name=f"Courtier {tag.upper()}", kind=kind)
        session.add(org)
        session.flush()
        emails = {role: f"{role}@courtier-{tag}.example" for role in ("manager", "admin", "viewer")}
        for role, email in emails.items():
            session.add(User(organisation_id=org.id, email=email, full_name=f"{role.title()} {tag}", role=role,
                             password_hash=PASSWORD_HASH))
        _key, raw = create_api_key(session, organisation_id=org.id, name=f"Clé {tag}")
        entities = {}
        for code in entity_codes:
            entity = LegalEntity(organisation_id=org.id, code=code, name=f"FOREM {code}", address1="9, rue Condorcet",
                                 address2="Centre Hoche", postal_code="91260", town="JUVISY-SUR-ORGE",
                                 phone="01 99 00 24 24", fax="01 99 00 24 25", email=None, vat_number=None,
                                 letter_town="JUVISY-SUR-ORGE", next_notice_no=197)
            session.add(entity)
            session.flush()
            entities[code] = entity.id
        return Broker(org.id, org.slug, emails["manager"], emails["admin"], emails["viewer"], raw, entities)


def client_item(number: str, **values: Any) -> dict[str, Any]:
    return {"number": number, "title": "M.", "last_name": f"Nom {number}", "first_name": "Jean",
            "address1": "1 rue de la Paix", "postal_code": "75002", "town": "Paris",
            "email": f"{number.lower()}@client.example", "notice_by_email": True} | values


def contract_item(number: str, client_number: str, entity_code: str = "SIEGE", **values: Any) -> dict[str, Any]:
    return {"number": number, "client_number": client_number, "entity_code": entity_code, "insurer": "CIGA - AXA",
            "category": "Multirisques habitation"} | values


def receipt_item(number: str, contract_number: str, **values: Any) -> dict[str, Any]:
    return {"number": number, "contract_number": contract_number, "period_start": date(2027, 1, 1),
            "period_end": date(2027, 12, 31), "collection": "confie", "receipt_type": "terme",
            "premium_ht": "412.50", "taxes": "37.13", "fees": "8.00"} | values


def save(broker: Broker, kind: records.Kind, *items: dict[str, Any]) -> records.SaveReport:
    """A batch saved through the service (as the API does); fails the test if it is refused."""
    with session_scope() as session:
        result = records.save_batch(session, organisation_id=broker.id, kind=kind, items=list(items),
                                    today=date(2026, 12, 3))
    assert isinstance(result, records.SaveReport), result
    return result


def xlsx(kind: records.Kind, *rows: Sequence[object], header_row: Sequence[object] | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in [list(header_row if header_row is not None else headers(kind))] + [list(r) for r in rows]:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF as pdftotext reads it (layout kept: a table row stays a line), on one line with single
    spaces; skips the test where poppler-utils is not installed."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext absent : apt-get install poppler-utils")
    result = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True,
                            check=True)
    return " ".join(result.stdout.decode().replace("\u202f", " ").replace("\u00a0", " ").split())


@pytest.fixture(scope="session")
def notices_server(database: str) -> Iterator[str]:
    """The notices service on a real port, on the tests' PostgreSQL (it needs no Temporal yet)."""
    from services.notices.app import app
    from tests.support.web import ServerThread

    server = ServerThread(app, free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def notices_http(notices_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=notices_server, timeout=30) as client:
        yield client
