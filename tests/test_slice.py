"""The slice, end to end over HTTP: a manager sends a test mail; Temporal renders and sends it through
the outbox; the mail arrives in the SMTP sink; the page shows the outbox status; the recipient's
action link works once."""

import re

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from core.db import session_scope
from services.campaigns.models import Driver, TestMail
from tests.support.smtp import SmtpSink, body_html, body_text
from tests.support.waiting import result_of
from tests.support.web import csrf_from, login, text

MANAGER = "gestionnaire@garonne.example"


def _driver(email_required: bool = True) -> Driver:
    with session_scope() as session:
        stmt = select(Driver).where(Driver.matricule.like("GAR%"))
        stmt = stmt.where(Driver.email.is_not(None) if email_required else Driver.email.is_(None))
        driver = session.scalars(stmt.order_by(Driver.id)).first()
        assert driver is not None
        session.expunge(driver)
        return driver


async def _send(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    page = await http.get("/envois-test")
    assert page.status_code == 200
    return await http.post("/envois-test", data={"csrf_token": csrf_from(page.text), **form})


async def test_manager_sends_a_test_mail_end_to_end(http: httpx.AsyncClient, dev_worker: Client,
                                                    sink: SmtpSink) -> None:
    assert (await login(http, MANAGER)).status_code == 303
    driver = _driver()
    sent = await _send(http, driver_id=str(driver.id), subject="Votre relevé, {{prenom}}",
                       body="Bonjour {{prenom}} {{nom}},\n\nMerci de saisir votre kilométrage.")
    assert sent.status_code == 303
    detail_url = sent.headers["location"]
    detail = await http.get(detail_url)
    assert detail.status_code == 200 and "Envoi de test lancé" in text(detail)
    workflow_id = re.search(r">(test-mail-\d+)</a>", detail.text)
    assert workflow_id, detail.text
    # Wait on the real workflow (no sleep): it ends once the mail is accepted by the SMTP sink.
    result = await result_of(dev_worker, workflow_id.group(1))
    assert result["status"] == "sent"

    [mail] = sink.to(driver.email or "")
    assert mail["Subject"] == f"Votre relevé, {driver.prenom}"
    assert f"Bonjour {driver.prenom} {driver.nom}," in body_text(mail)
    assert f"<p>Bonjour {driver.prenom} {driver.nom},</p>" in body_html(mail)

    status = await http.get(f"{detail_url}/statut")
    assert 'data-status="sent"' in text(status) and "Envoyé" in text(status)
    assert mail["Message-ID"] in text(status)
    listing = await http.get("/envois-test?statut=sent")
    assert f'href="{detail_url}"' in text(listing)

    # The recipient follows the link from the mail actually received: GET confirms, POST acts, once.
    link = re.search(r"(http://\S+/liens/accuse-reception/\S+)", body_text(mail))
    assert link
    async with httpx.AsyncClient(timeout=30) as anonymous:
        confirm = await anonymous.get(link.group(1))
        assert confirm.status_code == 200 and "Confirmer la réception" in text(confirm)
        assert confirm.headers["cache-control"] == "no-store"
        assert confirm.headers["referrer-policy"] == "no-referrer"
        assert "Non confirmé" in text(await http.get(f"{detail_url}/statut"))  # GET changed nothing
        done = await anonymous.post(link.group(1))
        assert done.status_code == 200 and "la réception est confirmée" in text(done)
        again = await anonymous.post(link.group(1))
        assert again.status_code == 409 and "déjà été utilisé" in text(again)
    assert "Non confirmé" not in text(await http.get(f"{detail_url}/statut"))


async def test_unknown_field_is_refused_next_to_the_field_and_nothing_is_created(http: httpx.AsyncClient) -> None:
    await login(http, MANAGER)
    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(TestMail))
    refused = await _send(http, driver_id=str(_driver().id), subject="Bonjour {{prenom}}",
                          body="Votre véhicule {{vehicule_inconnu}}")
    assert refused.status_code == 422
    assert "Contenu, ligne 1 : champ inconnu « {{vehicule_inconnu}} »" in text(refused)
    assert 'id="body-error"' in text(refused)
    no_email = await _send(http, driver_id=str(_driver(email_required=False).id), subject="S", body="B")
    assert no_email.status_code == 422 and "Adresse mail manquante" in text(no_email)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(TestMail)) == before
