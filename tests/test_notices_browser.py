"""The queue «Avis d'échéances par mail» in Chromium: a manager ticks every notice with «Sélection», «Valider»,
sees the PDF of a notice beside the list, and the statuses turn «Envoyé avec succès (OK)» as the robot sends."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import Client

from core.db import session_scope
from core.models import User
from core.settings import get_settings
from core.ui import today_paris
from services.notices.models import NoticeRun
from services.notices.service import records, runs
from tests.support.browser import ARTIFACTS, browser_page
from tests.support.notices import (  # noqa: F401 (fixtures)
    PASSWORD,
    client_item,
    contract_item,
    make_broker,
    notices_server,
    receipt_item,
    save,
)
from tests.support.smtp import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
async def page(notices_server: str) -> AsyncIterator[object]:  # noqa: F811
    async with browser_page(notices_server) as page:
        yield page


async def _queued_notices(count: int) -> tuple[str, int]:
    """A broker whose run is confirmed: `count` notices in E (manager's e-mail, run id)."""
    broker = make_broker()
    due = today_paris() + timedelta(days=30)
    save(broker, records.CLIENTS, *(client_item(f"N{n}") for n in range(count)))
    save(broker, records.CONTRACTS, *(contract_item(f"NC{n}", f"N{n}") for n in range(count)))
    save(broker, records.RECEIPTS, *(receipt_item(f"NQ{n}", f"NC{n}", period_start=due,
                                                  period_end=due + timedelta(days=364)) for n in range(count)))
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == broker.manager)).one()
        raw = runs.defaults(today_paris()) | {"entity_id": str(broker.entities["SIEGE"]),
                                               "effect_to": due.strftime("%d/%m/%Y"), "debit_to": due.strftime("%m/%Y")}
        criteria = runs.check_form(session, broker.id, raw).criteria
        assert criteria is not None
        run_id = runs.start_run(session, get_settings(), user=user, criteria=criteria, workstation="test").id
    def status() -> str:
        with session_scope() as session:
            run = session.get(NoticeRun, run_id)
            assert run is not None
            return run.status

    # The run's workflow renders in the workers, then «Oui» is carried out there.
    await wait_until(lambda: status() == "awaiting_answer", seconds=60, what="PDF générés")
    with session_scope() as session:
        run = session.get(NoticeRun, run_id)
        user = session.scalars(select(User).where(User.email == broker.manager)).one()
        assert run is not None
        runs.answer_run(session, get_settings(), user=user, run=run, confirmed=True)
    await wait_until(lambda: status() == "confirmed", seconds=60, what="avis marqués comme édités")
    return broker.manager, run_id


async def test_select_all_valider_and_see_the_pdf(page, dev_worker: Client,  # type: ignore[no-untyped-def]
                                                  sink: SmtpSink) -> None:
    manager, run_id = await _queued_notices(3)
    await page.goto("/login")
    await page.fill("#email", manager)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/")
    await page.goto(f"/avis?edition={run_id}")
    assert await page.locator("tbody tr").count() == 3
    assert await page.locator("tbody .badge", has_text="En attente de validation (E)").count() == 3
    await page.click("text=Sélection")
    assert await page.locator("input[name=ids]:checked").count() == 3
    await page.click("button[value=validate]")
    await page.wait_for_selector("text=3 avis validé(s)")
    await page.locator("tbody tr a").first.click()
    frame = page.locator('iframe[title^="Avis d\'échéance n°"]')
    await frame.wait_for()
    src = await frame.get_attribute("src")
    pdf = await page.request.get(src)
    assert pdf.headers["content-type"] == "application/pdf" and (await pdf.body()).startswith(b"%PDF")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "avis-file-pdf.png"), full_page=True)
    for _ in range(120):
        await page.goto(f"/avis?edition={run_id}")
        if await page.locator("tbody .badge", has_text="Envoyé avec succès (OK)").count() == 3:
            break
        await asyncio.sleep(0.5)  # the robot sends in the workers
    else:
        raise AssertionError("les avis ne sont jamais passés à OK")
    await page.screenshot(path=str(ARTIFACTS / "avis-file-envoyes.png"), full_page=True)
    for n in range(3):  # each client got its notice, with the PDF attached
        mail = sink.to(f"n{n}@client.example")[-1]
        assert next(mail.iter_attachments()).get_content_type() == "application/pdf"
