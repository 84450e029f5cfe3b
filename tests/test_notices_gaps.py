"""Three gaps a demanding user would hit: the queue's actions API retried with its `Idempotency-Key` (applied once,
the first answer again), the «Chargé clientèle» alert when the client record has no manager e-mail (the user who made
the run is told, and the history says so), and a «Mail» with nothing to make («Aucun avis à éditer», no PDF, no
question, the left-out list kept)."""

import io
import re
from datetime import date

import httpx
import openpyxl
from sqlalchemy import func, select, update

from core.db import session_scope
from core.models import OutboxMessage, User, WorkflowSignal
from core.settings import get_settings
from services.notices.models import Contract, LegalEntity, Notice, NoticeEvent, NoticeRun, Receipt
from services.notices.service import alerts, documents
from services.notices.service.records import CLIENTS, CONTRACTS, RECEIPTS
from tests.support.notices import (  # noqa: F401 (fixtures)
    Broker,
    client_item,
    contract_item,
    make_broker,
    notices_http,
    notices_server,
    pdf_text,
    receipt_item,
    save,
)
from tests.support.web import csrf_from, login, text

PDF = b"%PDF-1.4\n% un avis d'essai\n"


def _seen(response: httpx.Response) -> str:
    """The page's text as a reader sees it."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(response)).split())


def _queued(broker: Broker, *dossiers: str, run_by: str | None = None, **client: object) -> list[int]:
    """Notices in E in the queue (as a confirmed run leaves them), one per dossier; their ids."""
    save(broker, CLIENTS, *(client_item(d, **client) for d in dossiers))
    save(broker, CONTRACTS, *(contract_item(f"K{d}", d) for d in dossiers))
    save(broker, RECEIPTS, *(receipt_item(f"Q{d}", f"K{d}") for d in dossiers))
    entity_id = broker.entities["SIEGE"]
    ids = []
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == (run_by or broker.manager))).one()
        run = NoticeRun(organisation_id=broker.id, legal_entity_id=entity_id, criteria={}, status="confirmed",
                        planned=len(dossiers), created_by_id=user.id, created_by_name=user.full_name)
        session.add(run)
        session.flush()
        first = session.scalar(update(LegalEntity).where(LegalEntity.id == entity_id)
                               .values(next_notice_no=LegalEntity.next_notice_no + len(dossiers))
                               .returning(LegalEntity.next_notice_no - len(dossiers)))
        assert first is not None
        for number, dossier in enumerate(dossiers, start=first):
            receipt = session.scalars(select(Receipt).where(Receipt.organisation_id == broker.id,
                                                            Receipt.number == f"Q{dossier}")).one()
            client_id = session.scalars(select(Contract.client_id).where(Contract.id == receipt.contract_id)).one()
            stored = documents.store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=entity_id,
                                                notice_number=number, pdf=PDF, client_id=client_id,
                                                receipt_id=receipt.id)
            notice = Notice(organisation_id=broker.id, run_id=run.id, receipt_id=receipt.id, client_id=client_id,
                            legal_entity_id=entity_id, document_id=stored.document.id, number=number, status="E",
                            email=f"{dossier.lower()}@client.example", due_date=date(2027, 1, 1),
                            created_by_id=user.id, created_by_name=user.full_name,
                            workflow_id=f"avis-{broker.slug}-siege-{number}")
            session.add(notice)
            session.flush()
            ids.append(notice.id)
    return ids


def _pending(notice_ids: list[int]) -> list[tuple[str | None, str | None, int]]:
    """What the notices' workflows have been told: (pending action, by, signals queued) per notice."""
    with session_scope() as session:
        rows = []
        for notice in session.scalars(select(Notice).where(Notice.id.in_(notice_ids)).order_by(Notice.id)):
            signals = session.scalar(select(func.count()).where(WorkflowSignal.workflow_id == notice.workflow_id))
            rows.append((notice.pending_action, notice.pending_by_name, signals or 0))
        return rows


async def test_a_retried_actions_call_with_its_idempotency_key_applies_once(
        notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http, broker = notices_http, make_broker()
    first_id, second_id = _queued(broker, "D1", "D2")
    api = {"X-API-Key": broker.api_key}
    body = {"action": "validate", "ids": [first_id, second_id, 2**40]}
    first = await http.post("/api/v1/notices/actions", json=body, headers=api | {"Idempotency-Key": "valider-1"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert [(a["id"], a["accepted"], a["refused"]) for a in first.json()] == [
        (first_id, True, None), (second_id, True, None), (2**40, False, "cet avis n'existe pas")]
    told = _pending([first_id, second_id])
    assert [(action, signals) for action, _by, signals in told] == [("validate", 1), ("validate", 1)]

    # The network dropped the answer; the partner retries: not applied again, the first answer again.
    again = await http.post("/api/v1/notices/actions", json=body, headers=api | {"Idempotency-Key": "valider-1"})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _pending([first_id, second_id]) == told
    # Without the key, the same call is another request: each notice says why it cannot move now.
    unkeyed = await http.post("/api/v1/notices/actions", json=body, headers=api)
    assert [a["refused"] for a in unkeyed.json()][:2] == ["une action est déjà en cours sur cet avis"] * 2

    # The same key for another request is refused, in French, and does nothing.
    other = await http.post("/api/v1/notices/actions", headers=api | {"Idempotency-Key": "valider-1"},
                            json={"action": "block", "reason": "Adresse erronée", "ids": [first_id]})
    assert other.status_code == 409
    assert other.json()["detail"] == "Cette clé d'idempotence a déjà servi pour une autre requête."
    assert _pending([first_id, second_id]) == told
    # A key that served for a batch of clients cannot serve for actions, and the other way round.
    pushed = await http.post("/api/v1/clients", json={"items": [client_item("D9")]},
                             headers=api | {"Idempotency-Key": "lot-9"})
    assert pushed.status_code == 200
    assert (await http.post("/api/v1/notices/actions", json=body,
                            headers=api | {"Idempotency-Key": "lot-9"})).status_code == 409
    assert (await http.post("/api/v1/clients", json={"items": [client_item("D9")]},
                            headers=api | {"Idempotency-Key": "valider-1"})).status_code == 409

    # A refused request (no reason for a block) keeps nothing: its key may serve for the corrected one.
    with session_scope() as session:
        session.execute(update(Notice).where(Notice.id == first_id).values(pending_action=None))
    no_reason = await http.post("/api/v1/notices/actions", headers=api | {"Idempotency-Key": "bloquer-1"},
                                json={"action": "block", "ids": [first_id]})
    assert no_reason.status_code == 422 and "motif" in no_reason.json()["detail"]
    blocked = await http.post("/api/v1/notices/actions", headers=api | {"Idempotency-Key": "bloquer-1"},
                              json={"action": "block", "reason": "Adresse erronée", "ids": [first_id]})
    assert blocked.status_code == 200 and blocked.json()[0]["accepted"] is True
    # Keys are per API key: another broker's "valider-1" is its own (and sees none of these notices).
    other_broker = make_broker()
    foreign = await http.post("/api/v1/notices/actions", json=body,
                              headers={"X-API-Key": other_broker.api_key, "Idempotency-Key": "valider-1"})
    assert foreign.status_code == 200 and {a["refused"] for a in foreign.json()} == {"cet avis n'existe pas"}

    spec = (await http.get("/api/openapi.json")).json()["paths"]["/api/v1/notices/actions"]["post"]
    assert any(p["name"] == "idempotency-key" for p in spec["parameters"])
    assert {"409", "422"} <= set(spec["responses"])


def _alert(notice_id: int) -> tuple[OutboxMessage | None, list[str | None]]:
    with session_scope() as session:
        outbox_id = alerts.alert_if_stuck(session, get_settings(), notice_id)
        message = session.get(OutboxMessage, outbox_id) if outbox_id else None
        if message is not None:
            session.expunge(message)
        details = list(session.scalars(select(NoticeEvent.detail).where(NoticeEvent.notice_id == notice_id,
                                                                         NoticeEvent.action == "alerted")))
    return message, details


async def test_without_a_manager_email_the_alert_goes_to_who_made_the_run(
        notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    broker = make_broker()
    (told_manager,) = _queued(broker, "D1", account_manager="Claire Dubois",
                              account_manager_email="claire@cabinet.example")
    message, details = _alert(told_manager)
    assert message is not None and message.recipients == ["claire@cabinet.example"]
    assert details == ["Alerte envoyée à claire@cabinet.example (chargé clientèle Claire Dubois)"]
    assert alerts.FALLBACK_NOTE not in message.text_body

    (no_manager_email,) = _queued(broker, "D2", run_by=broker.admin, account_manager="Claire Dubois")
    message, details = _alert(no_manager_email)
    with session_scope() as session:
        admin = session.scalars(select(User).where(User.email == broker.admin)).one()
        run_id = session.scalars(select(Notice.run_id).where(Notice.id == no_manager_email)).one()
    assert message is not None and message.recipients == [broker.admin]
    assert "non envoyé" in message.subject and alerts.FALLBACK_NOTE in message.text_body
    why = f"{admin.full_name}, qui a lancé l'édition n°{run_id} : pas d'e-mail de chargé clientèle"
    assert details == [f"Alerte envoyée à {broker.admin} ({why})"]
    assert _alert(no_manager_email) == (None, details)  # once

    # What the manager reads in «Détails du document»
    await login(notices_http, broker.manager)
    page = _seen(await notices_http.get(f"/avis/{no_manager_email}"))
    assert f"Système Alerte envoyée E → E Alerte envoyée à {broker.admin} ({why})" in page

    # Nobody to tell (the run's author left): nothing sent, nothing written.
    (nobody,) = _queued(broker, "D3", run_by=broker.viewer)
    with session_scope() as session:
        session.execute(update(User).where(User.email == broker.viewer).values(is_active=False))
    assert _alert(nobody) == (None, [])


async def test_a_mail_with_nothing_to_make_says_so_and_asks_nothing(
        notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http, broker = notices_http, make_broker()
    save(broker, CLIENTS, client_item("D1", email=None), client_item("D2", notice_by_email=False))
    save(broker, CONTRACTS, contract_item("K1", "D1"), contract_item("K2", "D2"))
    save(broker, RECEIPTS, receipt_item("Q1", "K1"), receipt_item("Q2", "K2"))
    await login(http, broker.manager)
    form = await http.get("/editions")
    base = {"csrf_token": csrf_from(form.text), "entity_id": str(broker.entities["SIEGE"]),
            "collection": ["confie", "direct"], "receipt_types": ["terme", "comptant"], "debit_from": "01/1900",
            "debit_to": "12/2099", "entry_from": "01/01/1900", "entry_to": "31/12/2099",
            "effect_from": "01/01/1900", "effect_to": "31/12/2099", "fixed_fee": "0"}

    started = await http.post("/editions", data=base)
    assert started.status_code == 303
    run_url = started.headers["location"]
    run_id = int(run_url.rsplit("/", 1)[1])
    page = await http.get(run_url)
    seen = _seen(page)
    assert "État Aucun avis à éditer" in seen and "Avis à fabriquer 0" in seen
    assert "Clients laissés de côté 2" in seen
    assert "Aucun avis à éditer : chaque quittance choisie a été laissée de côté" in seen
    assert "Pas d'adresse e-mail" in seen and "« AE par mail » non coché" in seen
    assert "Marquer les avis comme édités ?" not in seen and "PDF générés" not in seen
    assert 'http-equiv="refresh"' not in page.text  # final: the page does not keep reloading
    with session_scope() as session:  # no workflow queued at all, no number taken
        assert session.scalar(select(func.count()).where(
            WorkflowSignal.workflow_id == f"avis-run-{broker.slug}-{run_id}")) == 0
        entity = session.get(LegalEntity, broker.entities["SIEGE"])
        assert entity is not None and entity.next_notice_no == 197
    # The paper list is still there, and an answer is refused.
    sheet = openpyxl.load_workbook(io.BytesIO((await http.get(f"{run_url}/exclus.xlsx")).content)).active
    assert sheet is not None and [row[0].value for row in sheet.iter_rows(min_row=2)] == ["D1", "D2"]
    assert "Pas d'adresse e-mail" in pdf_text((await http.get(f"{run_url}/exclus.pdf")).content)
    answered = await http.post(f"{run_url}/reponse", data={"csrf_token": csrf_from(page.text), "answer": "oui"},
                               follow_redirects=True)
    assert "n'attend plus de réponse (état : Aucun avis à éditer)" in _seen(answered)
    assert "Aucun avis à éditer" in _seen(await http.get("/editions"))  # the recent runs say it too

    # No receipt at all in the chosen range: said as such.
    empty = await http.post("/editions", data=base | {"dossier_from": "Z1", "dossier_to": "Z9"},
                            follow_redirects=True)
    seen = _seen(empty)
    assert "Aucun avis à éditer : aucune quittance ne répond à ces critères" in seen
    assert "Clients laissés de côté (0)" in seen and "Liste papier" not in seen
