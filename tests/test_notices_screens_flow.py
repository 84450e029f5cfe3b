"""The notices as a manager clicks through them, on the dev server with the project's workers and relay, the
notices app on a real port and the SMTP catcher: «Avis d'échéances» → «Mail» → «Oui» → «Avis d'échéances par mail»
→ «Valider» → the mails with their PDF → OK; «Bloquer» one and it never leaves; the paper list of the clients
left out; «Détails du document» with the send; the Temporal Web UI finds the notice by its dossier."""

import asyncio
import io
import re
from datetime import timedelta

import httpx
import openpyxl
from sqlalchemy import select, update
from temporalio.client import Client

from core.db import session_scope
from core.ui import today_paris
from services.notices.models import LegalEntity, RobotSettings
from services.notices.service import records, robot
from tests.support.notices import (  # noqa: F401 (fixtures)
    client_item,
    contract_item,
    make_broker,
    notices_http,
    notices_server,
    pdf_text,
    receipt_item,
    save,
)
from tests.support.smtp import SmtpSink
from tests.support.waiting import wait_until
from tests.support.web import csrf_from, login, text


async def _page(http: httpx.AsyncClient, url: str, wanted: str, seconds: float = 60) -> str:
    """The page once it says `wanted` (the work behind it runs in the workers)."""
    found = ""
    for _ in range(int(seconds / 0.25)):
        html = text(await http.get(url))
        found = " ".join(re.sub(r"<[^>]+>", " ", html).split())  # what a reader sees
        if wanted in found:
            return html + found
        await asyncio.sleep(0.25)  # real work in the workers (see tests/support/waiting.py)
    raise AssertionError(f"{url} ne dit jamais « {wanted} » :\n{found[-2000:]}")


async def test_a_manager_runs_validates_blocks_and_the_mails_leave_with_their_pdf(
        dev_worker: Client, notices_http: httpx.AsyncClient, sink: SmtpSink) -> None:  # noqa: F811
    broker = make_broker()
    due = today_paris() + timedelta(days=30)
    save(broker, records.CLIENTS, client_item("A1"), client_item("A2"), client_item("A3"),
         client_item("A4", email=None))
    save(broker, records.CONTRACTS, *(contract_item(f"K{n}", f"A{n}") for n in range(1, 5)))
    save(broker, records.RECEIPTS, *(receipt_item(f"R{n}", f"K{n}", period_start=due,
                                                  period_end=due + timedelta(days=364)) for n in range(1, 5)))
    with session_scope() as session:
        robot.robot_settings(session, broker.id)
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == broker.id).values(pause_ms=100))
    http = notices_http
    await login(http, broker.manager)
    form = await http.get("/editions")
    assert "Marquer" not in form.text and "Période d'effet" in text(form)
    started = await http.post("/editions", data={
        "csrf_token": csrf_from(form.text), "entity_id": str(broker.entities["SIEGE"]),
        "collection": ["confie", "direct"], "receipt_types": ["terme", "comptant"], "debit_from": "01/1900",
        "debit_to": due.strftime("%m/%Y"), "entry_from": "01/01/1900", "entry_to": today_paris().strftime("%d/%m/%Y"),
        "effect_from": "01/01/1900", "effect_to": due.strftime("%d/%m/%Y"), "fixed_fee": "2,50"})
    assert started.status_code == 303, text(started)
    run_url = started.headers["location"]
    page = await _page(http, run_url, "Marquer les avis comme édités ?")
    assert re.search(r"Avis à fabriquer\s*3", page) and "Pas d'adresse e-mail" in page
    paper = await http.get(f"{run_url}/exclus.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(paper.content)).active
    assert sheet is not None and [c.value for c in sheet[2]][0] == "A4"
    assert "Pas d'adresse e-mail" in pdf_text((await http.get(f"{run_url}/exclus.pdf")).content)
    await http.post(f"{run_url}/reponse", data={"csrf_token": csrf_from(page), "answer": "oui"})
    await _page(http, run_url, "État Avis marqués comme édités")

    queue = await _page(http, "/avis?dossier=A1", "Liste des documents (1)")
    assert "Nom A1 Jean" in queue and "En attente de validation (E) Détails" not in queue
    ids = {m.group(2): m.group(1) for m in re.finditer(r'name="ids" value="(\d+)" aria-label="Avis n°(\d+)"',
                                                       text(await http.get("/avis")))}
    assert len(ids) >= 3
    own = ids  # the queue shows this broker's notices only
    numbers = sorted(own, key=int)
    await http.post("/avis/actions", data={"csrf_token": csrf_from(queue), "action": "block",
                                           "reason": "Adresse à vérifier", "ids": [own[numbers[2]]]})
    done = await http.post("/avis/actions", data={"csrf_token": csrf_from(queue), "action": "validate",
                                                  "ids": [own[numbers[0]], own[numbers[1]]]}, follow_redirects=True)
    assert "2 avis validé(s)" in text(done)
    await wait_until(lambda: len([m for m in sink.messages if "@client.example" in str(m["To"])
                                  and m["Subject"].endswith("Jean")]) >= 2, what="2 mails")
    await _page(http, "/avis?dossier=A2&statut=OK", "Liste des documents (1)")
    blocked = await _page(http, "/avis?dossier=A3&statut=B", "Liste des documents (1)")
    assert "Bloqué : Adresse à vérifier" in blocked
    assert not sink.to("a3@client.example")
    mail = sink.to("a1@client.example")[-1]
    attachment = next(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert "2,50" in pdf_text(attachment.get_content())  # the run's fixed fees are on the notice
    details = await _page(http, f"/avis/{own[numbers[0]]}", "Statut du document Envoyé avec succès (OK)")
    assert "a1@client.example" in details and "Validé" in details
    found = [w async for w in dev_worker.list_workflows(
        f"RelaisOrganisation = '{broker.slug}' AND RelaisPerson = 'A1' AND RelaisDomain = 'notices'")]
    assert len(found) == 1 and found[0].id.endswith(f"-{numbers[0]}")

    # The partner API sees the same queue and acts on it, notice by notice.
    api = {"X-API-Key": broker.api_key}
    listed = (await http.get("/api/v1/notices", params={"dossier": "A1"}, headers=api)).json()
    assert [(n["number"], n["status"], n["status_label"]) for n in listed] == [
        (int(numbers[0]), "OK", "Envoyé avec succès (OK)")]
    answer = await http.post("/api/v1/notices/actions", headers=api, json={
        "action": "block", "reason": "Client parti", "ids": [int(own[numbers[0]]), int(own[numbers[2]])]})
    assert answer.status_code == 200 and [a["refused"] for a in answer.json()] == [
        "impossible de bloquer un avis au statut « Envoyé avec succès (OK) »",
        "impossible de bloquer un avis au statut « Bloqué par l'utilisateur (B) »"]
    missing_reason = await http.post("/api/v1/notices/actions", headers=api,
                                     json={"action": "block", "ids": [int(own[numbers[2]])]})
    assert missing_reason.status_code == 422 and "motif" in missing_reason.text
    resent = await http.post("/api/v1/notices/actions", headers=api,
                             json={"action": "resend", "ids": [int(own[numbers[0]])]})
    assert resent.json()[0]["accepted"] is True
    await wait_until(lambda: len(sink.to("a1@client.example")) == 2, what="renvoi de A1")
    history = text(await http.get(f"/avis/{own[numbers[0]]}"))
    assert "Renvoi demandé" in history and "API « Clé" in history


async def test_the_administrator_switches_manual_confirmation_off(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    broker = make_broker()
    entity_id = broker.entities["SIEGE"]
    await login(notices_http, broker.manager)
    assert (await notices_http.get(f"/entites/{entity_id}")).status_code == 403  # a manager cannot
    notices_http.cookies.clear()
    await login(notices_http, broker.admin)
    page = await notices_http.get(f"/entites/{entity_id}")
    assert 'name="manual_confirmation" value="1" checked' in page.text  # the seed's default: manual
    form = dict(re.findall(r'<input id="(\w+)" name="\w+" value="([^"]*)"', page.text))
    saved = await notices_http.post(f"/entites/{entity_id}", data=form | {"csrf_token": csrf_from(page.text)})
    assert saved.status_code == 303, text(saved)
    with session_scope() as session:
        entity = session.get(LegalEntity, entity_id)
        assert entity is not None and entity.manual_confirmation is False
    page = await notices_http.get(f"/entites/{entity_id}")
    assert 'name="manual_confirmation" value="1" >' in page.text


async def test_letter_texts_are_managed_by_administrators_and_printed_on_the_notice(
        notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    from services.notices.models import NoticeText
    from services.notices.service import runs
    from services.notices.service.notice_pdf import content_for_receipt, notice_html
    from tests.support.notices import receipt_item as receipt

    broker = make_broker()
    http = notices_http
    await login(http, broker.manager)
    page = await http.get("/textes")
    assert (await http.post("/textes", data={"csrf_token": csrf_from(page.text), "name": "X",
                                             "body": "Y"})).status_code == 403
    http.cookies.clear()
    await login(http, broker.admin)
    page = await http.get("/textes")
    body = "Pensez au prélèvement automatique.\n\nVotre chargé de clientèle reste à votre écoute."
    saved = await http.post("/textes", data={"csrf_token": csrf_from(page.text), "name": "Prélèvement",
                                             "body": body, "is_default": "1"})
    assert saved.status_code == 303
    again = await http.post("/textes", data={"csrf_token": csrf_from(page.text), "name": "Prélèvement", "body": "Z"})
    assert again.status_code == 422 and "Un autre texte s'appelle déjà « Prélèvement »." in text(again)
    with session_scope() as session:
        stored = session.scalars(select(NoticeText).where(NoticeText.organisation_id == broker.id)).one()
        assert stored.is_default and stored.body == body
    form = text(await http.get("/editions"))
    assert f'value="{stored.id}" selected>Prélèvement' in form
    # The run's text prints after the standard paragraph.
    save(broker, records.CLIENTS, client_item("T1"))
    save(broker, records.CONTRACTS, contract_item("TC1", "T1"))
    save(broker, records.RECEIPTS, receipt("TQ1", "TC1"))
    with session_scope() as session:
        receipt_id = session.scalars(select(runs.Receipt.id).where(runs.Receipt.organisation_id == broker.id)).one()
        content = content_for_receipt(session, organisation_id=broker.id, receipt_id=receipt_id, number=1,
                                      letter_date=today_paris())
    assert content is not None
    from dataclasses import replace

    from core.pdf import render_pdf_in_process
    printed = pdf_text(render_pdf_in_process(notice_html(replace(content, letter_text=body))))
    assert "Pensez au prélèvement automatique. Votre chargé de clientèle reste à votre écoute." in printed
