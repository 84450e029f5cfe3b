"""In Chromium: a requester uploads a file, checks the recap and confirms; then the deposer accepts in the extranet."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import Client

from core.db import session_scope
from services.removals.models import RemovalRequest
from services.removals.service.process import request_workflow_id
from tests.support.browser import ARTIFACTS, browser_page
from tests.support.removals import PASSWORD, line, make_deposer, make_requester, xlsx
from tests.support.smtp import SmtpSink
from tests.support.waiting import result_of

pytestmark = pytest.mark.browser


@pytest.fixture
async def page(removals_server: str) -> AsyncIterator[object]:
    async with browser_page(removals_server) as page:
        yield page


async def _login(page, email: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto("/login")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/")


async def test_upload_recap_confirm_then_the_deposer_accepts(page, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             dev_worker: Client, sink: SmtpSink) -> None:
    requester, deposer = make_requester(2), make_deposer()
    ARTIFACTS.mkdir(exist_ok=True)
    file = tmp_path / "Déposes juillet.xlsx"
    file.write_bytes(xlsx(*[line(requester, vin, deposer, lieu="Chambery") for vin in requester.vins]))
    page.on("dialog", lambda dialog: dialog.accept())

    await _login(page, requester.email)
    await page.click("text=Créer une nouvelle demande de dépose")
    await page.set_input_files("#fichier", str(file))
    await page.fill("#description", "Fin de contrat")
    await page.click("button:has-text('OK')")
    await page.wait_for_url("**/demandes/recapitulatif/*")
    recap = await page.text_content("#recap") or ""
    assert all(vin in recap for vin in requester.vins) and recap.count("Nouvelle") == 2 and deposer.name in recap
    await page.screenshot(path=str(ARTIFACTS / "depose-recapitulatif.png"), full_page=True)
    await page.click("#confirmer")
    await page.wait_for_url("**/enregistree")
    assert "Votre demande a bien été enregistrée" in (await page.text_content("main") or "")
    number = int(page.url.split("/")[-2])
    with session_scope() as session:
        request_id = session.scalar(select(RemovalRequest.id).where(RemovalRequest.organisation_id == requester.id,
                                                                    RemovalRequest.number == number))
    assert await result_of(dev_worker, request_workflow_id(request_id or 0)) == 2
    await page.click("button:has-text('Se déconnecter')")

    await _login(page, deposer.email)
    await page.click("text=Gérer les demandes de déposes")
    await page.wait_for_url("**/deposes")
    row = page.locator(f"tr[data-vin='{requester.vins[0]}']")
    assert await row.locator("td").nth(0).text_content() == requester.name
    await row.locator("a:has-text('Prévenu')").click()
    await page.wait_for_url("**/deposes/*")
    await page.click("button:has-text('Accepter la demande')")
    await page.wait_for_url("**/deposes")
    assert "est maintenant « Acceptée »" in (await page.text_content(".flash") or "")
    assert await page.locator(f"tr[data-vin='{requester.vins[0]}'] a.badge").text_content() == "Acceptée"
    await page.screenshot(path=str(ARTIFACTS / "depose-acceptee.png"), full_page=True)
