"""Every date and time a user reads is Europe/Paris, whatever the server's zone (TZ) and PostgreSQL's session
TimeZone: on a real page (Jinja `dt` / `d` / `paris` filters) and in an exported XLSX cell (`write_xlsx`).

2026-03-28 23:30 UTC is 29/03/2026 00:30 in Paris (winter time, UTC+1, a few hours before the change);
2026-07-14 22:15 UTC is 15/07/2026 00:15 (summer time, UTC+2). Both fall on another day than in UTC.
"""

import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy import text as sql

from core.db import get_engine, session_scope
from core.excel import excel_datetime, write_xlsx
from core.models import User
from core.ui import paris, paris_date, today_paris
from services.campaigns.models import MailTemplate
from services.removals.models import Mandate, RemovalRequest, TrackedVehicle
from tests.support.factories import make_org
from tests.support.removals import make_deposer, make_requester
from tests.support.web import login, text

WINTER = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
SUMMER = datetime(2026, 7, 14, 22, 15, tzinfo=UTC)
# (server TZ, PostgreSQL session TimeZone): UTC everywhere, and zones far from Paris on both sides.
ZONES = [("UTC", "UTC"), ("America/New_York", "Pacific/Auckland"), ("Pacific/Kiritimati", "America/Los_Angeles")]


@pytest.fixture(params=ZONES, ids=lambda z: f"TZ={z[0]},PGTZ={z[1]}")
def zones(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The test process (and the service threads it runs) in zone TZ, new PostgreSQL sessions in PGTZ."""
    server_tz, pg_tz = request.param
    monkeypatch.setenv("TZ", server_tz)
    monkeypatch.setenv("PGTZ", pg_tz)  # libpq: the TimeZone of every new session
    time.tzset()
    get_engine().dispose()  # pooled connections were opened with the old zone
    yield server_tz, pg_tz
    monkeypatch.undo()
    time.tzset()
    get_engine().dispose()


def test_the_helpers_ignore_the_server_zone(zones: tuple[str, str]) -> None:
    assert paris(WINTER) == "29/03/2026 à 00h30" and paris(WINTER, "%d/%m/%Y %H:%M") == "29/03/2026 00:30"
    assert paris(SUMMER, "%d/%m/%Y %H:%M") == "15/07/2026 00:15"
    # The same instants written with other offsets (as PostgreSQL returns them in its session zone), or naive UTC.
    assert paris(WINTER.astimezone(timezone(timedelta(hours=-5)))) == "29/03/2026 à 00h30"
    assert paris(WINTER.replace(tzinfo=None)) == "29/03/2026 à 00h30"
    assert paris_date(SUMMER) == "15/07/2026" and paris_date(date(2026, 7, 14)) == "14/07/2026"
    assert paris(None) == "-" and paris_date(None) == "-"
    assert excel_datetime(WINTER) == datetime(2026, 3, 29, 0, 30)
    assert excel_datetime(SUMMER.astimezone(timezone(timedelta(hours=13)))) == datetime(2026, 7, 15, 0, 15)
    sheet = load_workbook(io.BytesIO(write_xlsx(["Quand"], [[WINTER], [SUMMER]], sheet_title="T"))).active
    assert sheet is not None and sheet["A2"].value == datetime(2026, 3, 29, 0, 30)
    assert sheet["A3"].value == datetime(2026, 7, 15, 0, 15) and sheet["A3"].number_format == "dd/mm/yyyy hh:mm"


async def test_a_page_shows_paris_time(http: httpx.AsyncClient, zones: tuple[str, str]) -> None:
    """Modèles de mail: "Créé le" and "Modifié le" of a template written at those two instants."""
    server_tz, pg_tz = zones
    org = make_org()
    with session_scope() as session:
        assert session.scalar(sql("SHOW TimeZone")) == pg_tz  # the condition under test really holds
        manager = session.scalars(select(User).where(User.email == org.manager_email)).one()
        session.add(MailTemplate(organisation_id=org.id, name="Relevé KM", subject="Relevé", body="Bonjour",
                                 created_by_id=manager.id, created_at=WINTER, updated_by_id=manager.id,
                                 updated_at=SUMMER))
    assert os.environ["TZ"] == server_tz
    await login(http, org.manager_email)
    page = text(await http.get("/modeles"))
    row = page.split(">Relevé KM</a></td>", 1)[1].split("</tr>", 1)[0]
    assert "<td>29/03/2026 à 00h30</td>" in row and "<td>15/07/2026 à 00h15</td>" in row


async def test_a_removal_export_and_its_pages_show_paris_time(removals_http: httpx.AsyncClient,
                                                              zones: tuple[str, str]) -> None:
    """A request created at WINTER whose two vehicles were removed at WINTER and SUMMER: its list, its detail
    page and its XLSX export."""
    requester, deposer = make_requester(2), make_deposer()
    with session_scope() as session:
        request = RemovalRequest(organisation_id=requester.id, number=1, tracking_email=f"suivi@{requester.slug}.fr",
                                 created_at=WINTER)
        session.add(request)
        session.flush()
        vehicles = session.scalars(select(TrackedVehicle).where(TrackedVehicle.organisation_id == requester.id)
                                   .order_by(TrackedVehicle.vin)).all()
        for line, (vehicle, removed_at) in enumerate(zip(vehicles, (WINTER, SUMMER), strict=True), start=1):
            session.add(Mandate(organisation_id=requester.id, request_id=request.id, vehicle_id=vehicle.id,
                                deposer_id=deposer.id, line=line, vin=vehicle.vin, lieu="Parc sud",
                                desired_date=date(2026, 3, 27), status="effectuee", removal_date=removed_at,
                                box_digits="1234567", technician="Alix", workflow_id=f"removal-test-{uuid4().hex}"))
    await login(removals_http, requester.email)
    listing = text(await removals_http.get("/demandes"))
    assert "<td>29/03/2026</td>" in listing.split("#1", 1)[1].split("</tr>", 1)[0]  # created_at's day in Paris
    detail = text(await removals_http.get("/demandes/1"))
    assert "Créée le 29/03/2026 à 00h30" in detail
    assert "Déposé le 29/03/2026 à 00h30" in detail and "Déposé le 15/07/2026 à 00h15" in detail
    export = await removals_http.get("/demandes/1/export.xlsx")
    assert export.status_code == 200
    sheet = load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    column = rows[0].index("Date de dépose")
    by_vin = {row[3]: row[column] for row in rows[1:]}
    assert by_vin == {vehicles[0].vin: datetime(2026, 3, 29, 0, 30), vehicles[1].vin: datetime(2026, 7, 15, 0, 15)}


@pytest.mark.parametrize("server_tz", ["Etc/GMT+12", "Etc/GMT-14"])  # a day behind / ahead of Paris most hours
def test_the_future_is_judged_on_paris_today(monkeypatch: pytest.MonkeyPatch, server_tz: str) -> None:
    """A payment declared today (Paris) is not "in the future", tomorrow (Paris) is, whatever the server's zone."""
    from services.campaigns.models import Fine
    from services.campaigns.service.fines import declare_payment

    monkeypatch.setenv("TZ", server_tz)
    time.tzset()
    try:
        today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date()
        assert today_paris() == today
        fine = Fine(id=0, date_infraction=date(2020, 1, 1))
        with session_scope() as session:  # both answers are refusals: nothing is written
            accepted_date = declare_payment(session, fine=fine, paid_on=today, filename="preuve", data=b"")
            assert accepted_date == "Justificatif refusé : joignez un PDF, un JPEG ou un PNG de 5 Mo au plus."
            assert declare_payment(session, fine=fine, paid_on=today + timedelta(days=1), filename="preuve",
                                   data=b"") == "La date de paiement ne peut pas être dans le futur."
    finally:
        monkeypatch.undo()
        time.tzset()
