"""Removals end to end over HTTP on the real dev server: upload → recap → Confirmer (twice), the deposers' mails
read back from the SMTP sink and their links followed, the extranet, the partner API, the requester's screens."""

import io
import re

import httpx
import openpyxl
from sqlalchemy import select, update
from temporalio.client import Client

from activities.removals import RemovalActivities
from core.db import session_scope
from core.models import OutboxMessage
from core.settings import get_settings
from services.removals.models import Mandate, TrackedVehicle
from services.removals.service.process import request_workflow_id
from tests.support.removals import (
    XLSX,
    Deposer,
    Requester,
    create_request,
    engine_status,
    eventually,
    line,
    links_of,
    make_deposer,
    make_requester,
    subject,
    xlsx,
)
from tests.support.smtp import SmtpSink, body_text
from tests.support.waiting import result_of
from tests.support.web import csrf_from, login, text


def _status(vin: str) -> str:
    with session_scope() as session:
        return session.scalars(select(Mandate.status).where(Mandate.vin == vin)).one()


def _ids(vins: list[str]) -> dict[str, int]:
    with session_scope() as session:
        return {vin: mid for vin, mid in session.execute(select(Mandate.vin, Mandate.id).where(Mandate.vin.in_(vins)))}


async def _confirmed_request(http: httpx.AsyncClient, dev_worker: Client, requester: Requester,
                             rows: list[list[object]]) -> int:
    """Upload, check the recap, click "Confirmer" twice; returns the request number once the deposers are told."""
    await login(http, requester.email)
    form = await http.get("/demandes/nouvelle")
    posted = await http.post("/demandes/nouvelle", data={"csrf_token": csrf_from(form.text), "description": "Parc sud",
                                                         "tracking_email": f"suivi@{requester.slug}.example"},
                             files={"fichier": ("Déposes.xlsx", xlsx(*rows), XLSX)})
    assert posted.status_code == 303, text(posted)
    recap = await http.get(posted.headers["location"])
    page = text(recap)
    for header in ("Marque", "Modèle", "VIN", "N° Abonnement", "Code distributeur", "Nom du distributeur",
                   "Adresse email", "Lieu de dépose", "Date souhaitée", "Statut"):
        assert f"<th>{header}</th>" in page
    assert page.count("<td>Nouvelle</td>") == len(rows) and "Vous n'avez plus qu'à confirmer" in page
    action = re.search(r'action="(/demandes/recapitulatif/[^"]+/confirmer)"', recap.text)
    assert action
    first = await http.post(action.group(1), data={"csrf_token": csrf_from(recap.text)})
    second = await http.post(action.group(1), data={"csrf_token": csrf_from(recap.text)})  # double click
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    saved = text(await http.get(first.headers["location"]))
    assert "Demande enregistrée" in saved and "Votre demande a bien été enregistrée" in saved
    number = int(first.headers["location"].split("/")[2])
    with session_scope() as session:
        request_id = session.scalar(select(Mandate.request_id).where(Mandate.vin == rows[0][0]))
        assert session.scalar(select(Mandate.id).where(Mandate.vin == rows[0][0]).limit(2).offset(1)) is None
    assert await result_of(dev_worker, request_workflow_id(request_id or 0)) == len(rows)
    return number


async def test_mail_links_extranet_api_and_requester_screens(removals_http: httpx.AsyncClient, dev_worker: Client,
                                                            sink: SmtpSink) -> None:
    requester, a, b = make_requester(9), make_deposer(), make_deposer()
    v = requester.vins
    rows = [line(requester, vin, a if i < 4 else b, comment="A faire ASAP" if i == 0 else None)
            for i, vin in enumerate(v)]
    number = await _confirmed_request(removals_http, dev_worker, requester, rows)

    # ONE mail per deposer, listing all its vehicles with their links.
    [mail_a], [mail_b] = sink.to(a.email), sink.to(b.email)
    links_a = links_of(mail_a)
    assert set(links_a.by_vin) == set(v[:4]) and set(links_of(mail_b).by_vin) == set(v[4:])
    assert "A faire ASAP" in body_text(mail_a) and "Accepter tout" in body_text(mail_a)
    assert all(_status(vin) == "prevenu" for vin in v)
    await _links(removals_http, requester, a, links_a, v)
    await _extranet(removals_http, requester, a, b, v)
    await _api(removals_http, a, b, v)
    await _requester_screens(removals_http, requester, b, number, v, sink)


async def _links(http: httpx.AsyncClient, requester: Requester, a: Deposer, links: object, v: list[str]) -> None:
    by_vin = links.by_vin  # type: ignore[attr-defined]
    # GET only shows (mail scanners open links): nothing changes.
    for _ in range(2):
        shown = await http.get(by_vin[v[0]]["accepter"])
        assert shown.status_code == 200 and "Accepter la demande" in text(shown) and v[0] in text(shown)
    assert _status(v[0]) == "prevenu"
    done = await http.post(by_vin[v[0]]["accepter"])
    assert done.status_code == 200 and f"{v[0]} est maintenant « Acceptée »" in text(done)
    assert _status(v[0]) == "acceptee"
    replay = await http.post(by_vin[v[0]]["accepter"])
    assert replay.status_code == 409 and "Ce lien a déjà été utilisé" in text(replay)
    # A token is bound to its action and its vehicle: the accept token on the refuse path is no link at all.
    wrong_path = by_vin[v[1]]["accepter"].replace("/liens/accepter/", "/liens/refuser/")
    assert (await http.post(wrong_path)).status_code == 404
    # Refuser: the reason is mandatory; a refused form consumes nothing.
    empty = await http.post(by_vin[v[1]]["refuser"], data={"reason": " "})
    assert empty.status_code == 422 and "Le motif du refus est obligatoire." in text(empty)
    refused = await http.post(by_vin[v[1]]["refuser"], data={"reason": "Véhicule introuvable sur le parc"})
    assert refused.status_code == 200 and "« Refusée »" in text(refused) and _status(v[1]) == "refusee"
    # The accept link of a refused vehicle: a valid link whose action is no longer possible.
    late = await http.post(by_vin[v[1]]["accepter"])
    assert late.status_code == 409 and "elle ne peut plus être acceptée" in text(late)
    # Signaler la dépose straight from Prévenu, with the seed's warning and fields.
    form = await http.get(by_vin[v[2]]["signaler"])
    assert "vous avez bien démonté le boîtier du véhicule" in text(form) and "Nom du technicien" in text(form)
    bad = await http.post(by_vin[v[2]]["signaler"], data={"removal_date": "2026-01-05T10:23", "box_digits": "123",
                                                          "technician": "Karim"})
    assert bad.status_code == 422 and "7 derniers chiffres" in text(bad)
    reported = await http.post(by_vin[v[2]]["signaler"], data={"removal_date": "2026-01-05T10:23",
                                                               "box_digits": "4512345", "technician": "Karim"})
    assert reported.status_code == 200 and "« Effectuée »" in text(reported)
    assert [_status(x) for x in v[:3]] == ["acceptee", "refusee", "effectuee"]  # each link acted on its own VIN
    # "Accepter tout": what is still Prévenu for this deposer (only the 4th vehicle now).
    accept_all = await http.post(links.accept_all)  # type: ignore[attr-defined]
    assert accept_all.status_code == 200 and "1 demande(s) de dépose acceptée(s)." in text(accept_all)
    assert _status(v[3]) == "acceptee"
    await eventually(lambda: _closed(v[2]))  # the "dépose informatique"


def _closed(vin: str) -> bool:
    with session_scope() as session:
        vehicle = session.scalars(select(TrackedVehicle).where(TrackedVehicle.vin == vin)).one()
        return vehicle.subscription_status == "closed" and vehicle.box_digits == "4512345"


async def _extranet(http: httpx.AsyncClient, requester: Requester, a: Deposer, b: Deposer, v: list[str]) -> None:
    await login(http, b.email)
    listing = text(await http.get("/deposes"))
    for header in ("Demandeur", "Code distributeur demandeur", "Marque", "Modèle", "VIN", "N° Abonnement",
                   "Lieu de dépose", "Date souhaitée", "Statut"):
        assert f"<th>{header}</th>" in listing
    assert all(vin in listing for vin in v[4:]) and v[0] not in listing
    assert requester.name in listing and requester.code in listing
    filtered = text(await http.get("/deposes", params={"q": v[4]}))
    assert v[4] in filtered and v[5] not in filtered
    ids = _ids(v)
    page = await http.get(f"/deposes/{ids[v[4]]}")
    assert "Accepter la demande" in text(page) and "Refuser la demande" in text(page)
    assert "Signaler la dépose" in text(page)
    token = csrf_from(page.text)
    accepted = await http.post(f"/deposes/{ids[v[4]]}/accepter", data={"csrf_token": token})
    assert "est maintenant « Acceptée »" in text(await http.get(accepted.headers["location"]))
    shown = text(await http.get(f"/deposes/{ids[v[4]]}"))
    assert "Accepter la demande" not in shown and "Refuser la demande" in shown  # only what Acceptée allows
    again = await http.post(f"/deposes/{ids[v[4]]}/accepter", data={"csrf_token": token})
    assert "déjà « Acceptée »" in text(await http.get(again.headers["location"]))
    # Another deposer's VIN is not found, to look at or to act on.
    assert (await http.get(f"/deposes/{ids[v[0]]}")).status_code == 404
    assert (await http.post(f"/deposes/{ids[v[3]]}/refuser", data={"csrf_token": token, "reason": "x"})
            ).status_code == 404
    assert _status(v[3]) == "acceptee"
    report = await http.get(f"/deposes/{ids[v[4]]}/signaler")
    assert "Attention, la confirmation d'une dépose signifie" in text(report)
    done = await http.post(f"/deposes/{ids[v[4]]}/signaler", data={
        "csrf_token": token, "removal_date": "2026-01-06T09:00", "box_digits": "7654321", "technician": "Alix"})
    assert "« Effectuée »" in text(await http.get(done.headers["location"]))
    assert _status(v[4]) == "effectuee"
    empty = await http.post(f"/deposes/{ids[v[7]]}/refuser", data={"csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and "Le motif du refus est obligatoire." in text(empty)
    refused = await http.post(f"/deposes/{ids[v[7]]}/refuser", data={"csrf_token": token, "reason": "Clés absentes"})
    assert "« Refusée »" in text(await http.get(refused.headers["location"])) and _status(v[7]) == "refusee"
    await http.post("/logout", data={"csrf_token": token})


async def _api(http: httpx.AsyncClient, a: Deposer, b: Deposer, v: list[str]) -> None:
    ids, headers = _ids(v), {"X-API-Key": b.api_key}
    listed = (await http.get("/api/v1/mandates", headers=headers)).json()
    assert {m["vin"] for m in listed} == set(v[4:])
    assert {m["status_label"] for m in listed if m["vin"] == v[5]} == {"Prévenu"}
    assert (await http.get(f"/api/v1/mandates/{ids[v[0]]}", headers=headers)).status_code == 404
    assert (await http.post(f"/api/v1/mandates/{ids[v[0]]}/accept", headers=headers)).status_code == 404
    accepted = await http.post(f"/api/v1/mandates/{ids[v[5]]}/accept", headers=headers)
    assert accepted.status_code == 200 and accepted.json() == {"id": ids[v[5]], "vin": v[5], "status": "acceptee",
                                                               "status_label": "Acceptée"}
    again = await http.post(f"/api/v1/mandates/{ids[v[5]]}/accept", headers=headers)
    assert again.status_code == 409 and again.json()["detail"] == (
        "Action refusée : cette demande de dépose est déjà « Acceptée ».")
    no_reason = await http.post(f"/api/v1/mandates/{ids[v[5]]}/refuse", headers=headers, json={"reason": ""})
    assert no_reason.status_code == 422 and no_reason.json()["detail"] == "Le motif du refus est obligatoire."
    refused = await http.post(f"/api/v1/mandates/{ids[v[5]]}/refuse", headers=headers, json={"reason": "Parc plein"})
    assert refused.json()["status_label"] == "Refusée"
    late = await http.post(f"/api/v1/mandates/{ids[v[5]]}/confirm", headers=headers, json={
        "removal_date": "2026-01-05T10:00:00+01:00", "box_digits": "1234567", "technician": "Alix"})
    assert late.status_code == 409 and "elle ne peut plus être signalée comme effectuée" in late.json()["detail"]
    # The same Idempotency-Key twice: applied once, the same answer twice.
    retried = [await http.post(f"/api/v1/mandates/{ids[v[8]]}/accept", headers=headers | {"Idempotency-Key": "k1"})
               for _ in range(2)]
    assert [r.json()["status_label"] for r in retried] == ["Acceptée", "Acceptée"]
    reused = await http.post(f"/api/v1/mandates/{ids[v[8]]}/refuse", json={"reason": "Parc fermé"},
                             headers=headers | {"Idempotency-Key": "k1"})  # the same key for another action
    assert reused.status_code == 409 and "clé d'idempotence a déjà servi" in reused.json()["detail"]
    assert _status(v[8]) == "acceptee"
    confirmed = await http.post(f"/api/v1/mandates/{ids[v[8]]}/confirm", headers=headers, json={
        "removal_date": "2026-01-05T10:00:00", "box_digits": "1234567", "technician": "Alix"})
    assert confirmed.status_code == 200 and confirmed.json()["status_label"] == "Effectuée"
    assert (await http.get("/api/v1/mandates", headers={"X-API-Key": "rk_x_y"})).status_code == 401
    assert "/api/v1/mandates/{mandate_id}/confirm" in (await http.get("/api/openapi.json")).json()["paths"]


async def _requester_screens(http: httpx.AsyncClient, requester: Requester, b: Deposer, number: int, v: list[str],
                             sink: SmtpSink) -> None:
    await login(http, requester.email)
    listing = text(await http.get("/demandes"))
    assert f"#{number}" in listing and "Parc sud" in listing and f"suivi@{requester.slug}.example" in listing
    assert "Total : 9 dont acceptées : 2 dont effectuées : 3" in listing
    ids = _ids(v)
    detail = await http.get(f"/demandes/{number}")
    assert "Annuler" in text(detail) and "Refusée" in text(detail)
    token = csrf_from(detail.text)
    cancelled = await http.post(f"/demandes/{number}/vehicules/{ids[v[6]]}/annuler", data={"csrf_token": token})
    assert "est maintenant « Annulée »" in text(await http.get(cancelled.headers["location"]))
    again = await http.post(f"/demandes/{number}/vehicules/{ids[v[6]]}/annuler", data={"csrf_token": token})
    assert "cette demande de dépose est déjà « Annulée »" in text(await http.get(again.headers["location"]))
    export = await http.get(f"/demandes/{number}/export.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(export.content), read_only=True).active
    exported = list(sheet.iter_rows(values_only=True))
    assert exported[0][:4] == ("N° demande", "Marque", "Modèle", "VIN") and len(exported) == 10
    assert {r[3]: r[10] for r in exported[1:]}[v[6]] == "Annulée"
    closed = text(await http.get("/vehicules", params={"q": v[2]}))
    assert "Clôturé le" in closed and "4512345" in closed
    tracking = f"suivi@{requester.slug}.example"
    await eventually(lambda: len(sink.to(tracking)) >= 8 and len(sink.to(b.email)) == 2)
    subjects = {subject(m) for m in sink.to(tracking)}
    assert {f"Prise en compte de votre demande de dépose #{number}", f"Acceptation de votre demande de dépose {v[0]}",
            f"Refus de votre demande de dépose {v[1]}", f"Dépose effectuée {v[2]}",
            f"Annulation de votre demande de dépose {v[6]}"} <= subjects
    assert subject(sink.to(b.email)[-1]) == f"Annulation de la demande de dépose {v[6]}"


async def _engine_has(client: Client, workflow_id: str, status: str) -> bool:
    return await engine_status(client, workflow_id) == status


async def test_a_click_before_the_launcher_reaches_the_vehicle_starts_its_workflow(
        removals_http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink) -> None:
    """The deposers' mails leave before thousands of mandate workflows are started: an early click starts its own
    (same deterministic id, so the launcher later finds it running) and is applied. A click that comes after the
    server accepted the mail but before the launcher recorded «Prévenu» finds it Prévenu."""
    requester, a = make_requester(1), make_deposer()
    request_id, number = create_request(requester, [line(requester, requester.vins[0], a)])
    RemovalActivities(get_settings(), dev_worker).notify_removal_deposers(request_id)  # mails written, no workflow
    key = f"removal-notify-{request_id}-deposer-{a.id}"
    with session_scope() as session:
        body = session.scalars(select(OutboxMessage.text_body).where(OutboxMessage.key == key)).one()
    accept = re.search(r"Accepter : (http://\S+)", body)
    assert accept
    not_sent = await removals_http.get(accept.group(1))  # the mail is not sent: the mandate is still Nouvelle
    assert not_sent.status_code == 409 and "n'a pas encore été transmise au mandataire" in text(not_sent)
    assert _status(requester.vins[0]) == "nouvelle"
    with session_scope() as session:  # the server accepts it; the launcher has not recorded it yet
        session.execute(update(OutboxMessage).where(OutboxMessage.key == key).values(status="sent"))
    page = await removals_http.get(accept.group(1))
    assert page.status_code == 200 and "Accepter la demande" in text(page)
    assert _status(requester.vins[0]) == "prevenu"
    done = await removals_http.post(accept.group(1))
    assert done.status_code == 200 and "« Acceptée »" in text(done)
    workflow_id = f"removal-{number}-vin-{requester.vins[0]}"
    await eventually(lambda: _engine_has(dev_worker, workflow_id, "acceptee"))  # started by the relay, with the signal
    tracking = f"suivi@{requester.slug}.example"  # and the requester is told, as for any acceptance
    await eventually(lambda: [subject(m) for m in sink.to(tracking)] == [
        f"Acceptation de votre demande de dépose {requester.vins[0]}"])
    await dev_worker.get_workflow_handle(workflow_id).terminate("fin du test")
