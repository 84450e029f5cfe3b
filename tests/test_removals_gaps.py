"""Removals against seed 004, what users still missed (issue 12): each gap seen over HTTP as a user sees it."""

import io
import re
from datetime import date, timedelta

import httpx
import openpyxl
import pytest
from sqlalchemy import select, update
from temporalio.client import Client

from activities.removals import RemovalActivities
from core.db import session_scope
from core.excel import read_xlsx
from core.models import OutboxMessage
from core.settings import get_settings
from services.removals.demo import load_removals_demo
from services.removals.models import Mandate, TrackedVehicle
from services.removals.service import process, queries, upload
from tests.support.removals import (
    XLSX,
    create_request,
    eventually,
    line,
    make_deposer,
    make_requester,
    subject,
    xlsx,
)
from tests.support.smtp import SmtpSink
from tests.support.web import csrf_from, login, text


def words(response: httpx.Response) -> str:
    """The page's text as read: tags dropped, blanks collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(response)).split())


async def test_the_request_page_says_which_deposers_are_not_told_yet(removals_http: httpx.AsyncClient,
                                                                     dev_worker: Client) -> None:
    """While a deposer's mail is not accepted by the server its vehicles stay «Nouvelle», and the request's page
    says why: being sent, or refused with the server's reply."""
    requester, a, b = make_requester(3), make_deposer(), make_deposer()
    request_id, number = create_request(requester, [line(requester, requester.vins[0], a),
                                                    line(requester, requester.vins[1], a),
                                                    line(requester, requester.vins[2], b)])
    RemovalActivities(get_settings(), dev_worker).notify_removal_deposers(request_id)  # written, not sent
    await login(removals_http, requester.email)
    page = words(await removals_http.get(f"/demandes/{number}"))
    assert "Déposeurs pas encore prévenus" in page
    assert f"{a.name} ({a.code}) : 2 véhicule(s) — mail en cours d'envoi" in page
    with session_scope() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.key == f"removal-notify-{request_id}-deposer-{a.id}")
                        .values(status="ko", last_reply="550 5.1.1 Adresse inconnue"))
        session.execute(update(OutboxMessage).where(OutboxMessage.key == f"removal-notify-{request_id}-deposer-{b.id}")
                        .values(status="sent"))
        process.mark_notified(session, request_id=request_id, deposer_id=b.id)
    response = await removals_http.get(f"/demandes/{number}")
    page = words(response)
    assert (f"{a.name} ({a.code}) : 2 véhicule(s) — mail refusé par le serveur de messagerie : "
            "550 5.1.1 Adresse inconnue ; vous pouvez annuler ces véhicules") in page
    untold = response.text.split('id="untold"')[1].split("</section>")[0]
    assert b.name not in untold
    assert response.text.count(">Nouvelle</span>") == 2 and response.text.count(">Prévenu</span>") == 1


def _notified(client: Client, request_id: int) -> dict[int, str]:
    """The launcher's first steps without Temporal: the deposers' mails written, accepted by the server (marked
    sent) and recorded Prévenu. Returns each deposer's mail text."""
    notices = RemovalActivities(get_settings(), client).notify_removal_deposers(request_id)
    with session_scope() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_([n.outbox_id for n in notices]))
                        .values(status="sent"))
        for notice in notices:
            process.mark_notified(session, request_id=request_id, deposer_id=notice.deposer_id)
        return {n.deposer_id: session.scalars(select(OutboxMessage.text_body)
                                              .where(OutboxMessage.id == n.outbox_id)).one() for n in notices}


async def _post(http: httpx.AsyncClient, path: str, form_page: str, data: dict[str, str] | None = None,
                files: dict[str, tuple[str, bytes, str]] | None = None) -> httpx.Response:
    page = await http.get(form_page)
    return await http.post(path, data={"csrf_token": csrf_from(page.text), **(data or {})}, files=files)


async def test_declared_location_edited_imported_and_shown_to_the_deposer(removals_http: httpx.AsyncClient,
                                                                         dev_worker: Client) -> None:
    """«Emplacement déclaré»: edited in «Gérer les véhicules clients» or imported (Vin | Emplacement déclaré, all
    or nothing), then in the deposer's list, on the mandate page and in the deposer's mail."""
    requester, deposer = make_requester(3), make_deposer()
    v = requester.vins
    await login(removals_http, requester.email)
    listing = await removals_http.get("/vehicules")
    assert "<th>Emplacement déclaré</th>" in listing.text and "Importer les emplacements déclarés" in text(listing)
    ids = _vehicle_ids(v)
    edited = await _post(removals_http, f"/vehicules/{ids[v[0]]}/emplacement", "/vehicules",
                         {"declared_location": "  Y4B ", "q": ""})
    assert f"Emplacement déclaré du véhicule {v[0]} : Y4B." in text(await removals_http.get(edited.headers["location"]))
    too_long = await _post(removals_http, f"/vehicules/{ids[v[1]]}/emplacement", "/vehicules",
                           {"declared_location": "x" * 61})
    assert "Emplacement déclaré : 60 caractères au plus (61 saisis)." in text(
        await removals_http.get(too_long.headers["location"]))
    model = await removals_http.get("/vehicules/modele-emplacements.xlsx")
    assert {r.values["Vin"]: r.values.get("Emplacement déclaré") for r in read_xlsx(
        model.content, expected_headers=["Vin", "Emplacement déclaré"])} == {v[0]: "Y4B", v[1]: None, v[2]: None}
    bad = await _post(removals_http, "/vehicules/emplacements", "/vehicules", files={"fichier": (
        "emplacements.xlsx", xlsx([v[1], "Coffre"], ["VF1AAAAAAAAAAAAAA", "x"], [v[2], "y" * 61],
                                  headers=["Vin", "Emplacement déclaré"]), XLSX)})
    page = words(bad)
    assert bad.status_code == 422 and "Le fichier est refusé : aucun emplacement n'a été modifié." in page
    assert "Ligne 3, colonne « Vin » : VIN VF1AAAAAAAAAAAAAA inconnu ou n'appartenant pas à votre compte" in page
    assert "Ligne 4, colonne « Emplacement déclaré » : 60 caractères au plus (61 saisis)" in page
    assert _locations(v) == {v[0]: "Y4B", v[1]: None, v[2]: None}
    good = await _post(removals_http, "/vehicules/emplacements", "/vehicules", files={"fichier": (
        "emplacements.xlsx", xlsx([v[1], "Coffre, roue de secours"], [v[2], "Z1C"],
                                  headers=["Vin", "Emplacement déclaré"]), XLSX)})
    assert "Emplacements déclarés importés : 2 véhicule(s) mis à jour." in text(
        await removals_http.get(good.headers["location"]))
    assert _locations(v) == {v[0]: "Y4B", v[1]: "Coffre, roue de secours", v[2]: "Z1C"}

    request_id, _number = create_request(requester, [line(requester, vin, deposer) for vin in v[:2]])
    mail = _notified(dev_worker, request_id)[deposer.id]
    assert "Emplacement déclaré : Y4B" in mail and "Emplacement déclaré : Coffre, roue de secours" in mail
    await login(removals_http, deposer.email)
    deposes = await removals_http.get("/deposes")
    assert "<th>Emplacement déclaré</th>" in deposes.text and "<td>Y4B</td>" in deposes.text
    mandate_id = re.search(rf'data-vin="{v[0]}".*?href="/deposes/(\d+)"', deposes.text, re.S)
    assert mandate_id
    assert "Emplacement déclaré Y4B" in words(await removals_http.get(f"/deposes/{mandate_id.group(1)}"))


def _vehicle_ids(vins: list[str]) -> dict[str, int]:
    with session_scope() as session:
        found = session.execute(select(TrackedVehicle.vin, TrackedVehicle.id).where(TrackedVehicle.vin.in_(vins)))
        return {vin: vehicle_id for vin, vehicle_id in found}


def _locations(vins: list[str]) -> dict[str, str | None]:
    with session_scope() as session:
        found = session.execute(select(TrackedVehicle.vin, TrackedVehicle.declared_location)
                                .where(TrackedVehicle.vin.in_(vins)))
        return {vin: location for vin, location in found}


async def test_deposer_list_filters_by_requester_hides_nouvelle_and_menu_appears_once_a_request_came(
        removals_http: httpx.AsyncClient, dev_worker: Client) -> None:
    """«Demandeur client» filter; «Nouvelle» lines unseen until the deposer's mail is sent; the menu «Gérer les
    demandes de déposes» only for a deposer that has received a request."""
    first, second, deposer = make_requester(2), make_requester(1), make_deposer()
    await login(removals_http, deposer.email)
    home = await removals_http.get("/")
    assert "Aucune demande de dépose ne vous a encore été adressée" in text(home)
    assert 'href="/deposes"' not in home.text
    one, _ = create_request(first, [line(first, first.vins[0], deposer), line(first, first.vins[1], deposer)])
    other, _ = create_request(second, [line(second, second.vins[0], deposer)])  # mail not sent yet: Nouvelle
    deposes = await removals_http.get("/deposes")
    assert first.vins[0] not in deposes.text and second.vins[0] not in deposes.text
    assert 'href="/deposes"' not in (await removals_http.get("/")).text
    _notified(dev_worker, one)
    home = await removals_http.get("/")
    assert 'href="/deposes"' in home.text and "Gérer les demandes de déposes" in text(home)
    deposes = await removals_http.get("/deposes")
    assert first.vins[0] in deposes.text and second.vins[0] not in deposes.text
    assert "Demandeur client" in text(deposes) and f">{first.name}</option>" in deposes.text
    assert f">{second.name}</option>" not in deposes.text  # nothing of it shown yet
    _notified(dev_worker, other)
    every = await removals_http.get("/deposes")
    assert all(vin in every.text for vin in [*first.vins, *second.vins])
    match = re.search(rf'<option value="(\d+)" >{re.escape(second.name)}</option>', every.text)
    assert match, every.text[every.text.find('id="demandeur"'):][:600]
    only = await removals_http.get("/deposes", params={"demandeur": match.group(1)})
    assert second.vins[0] in only.text and first.vins[0] not in only.text and first.vins[1] not in only.text
    assert f'value="{match.group(1)}" selected' in only.text
    foreign = await removals_http.get("/deposes", params={"demandeur": "999999999"})  # not one of its requesters
    assert all(vin in foreign.text for vin in [*first.vins, *second.vins])


async def test_alerts_go_to_every_recipient_and_the_report_warning_names_the_logistics_contact(
        removals_http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request page edits its alert recipients (the tracking address and others, every address checked); the
    next alert goes to all of them. «Signaler une dépose» gives the configured logistics contact."""
    requester, deposer = make_requester(1), make_deposer()
    request_id, number = create_request(requester, [line(requester, requester.vins[0], deposer)])
    tracking = f"suivi@{requester.slug}.example"
    await login(removals_http, requester.email)
    page = words(await removals_http.get(f"/demandes/{number}"))
    assert f"Destinataires des alertes : {tracking}" in page
    refused = await _post(removals_http, f"/demandes/{number}/alertes", f"/demandes/{number}",
                          {"tracking_email": tracking, "alert_emails": "chef@exemple.fr\npas-une-adresse"})
    assert refused.status_code == 422 and "Adresse e-mail invalide : « pas-une-adresse »." in text(refused)
    assert "pas-une-adresse</textarea>" in refused.text  # what was typed, to correct it
    saved = await _post(removals_http, f"/demandes/{number}/alertes", f"/demandes/{number}",
                        {"tracking_email": tracking,
                         "alert_emails": "chef@exemple.fr; parc@exemple.fr\nchef@exemple.fr"})
    assert "Destinataires des alertes de la demande #" in text(await removals_http.get(saved.headers["location"]))
    assert f"Destinataires des alertes : {tracking}, chef@exemple.fr, parc@exemple.fr" in words(
        await removals_http.get(f"/demandes/{number}"))

    monkeypatch.setattr(get_settings(), "removal_logistics_contact", "04 79 00 00 00 ou logistique@exemple.fr")
    _notified(dev_worker, request_id)
    await login(removals_http, deposer.email)
    deposes = await removals_http.get("/deposes")
    mandate_id = re.search(r'href="/deposes/(\d+)"', deposes.text)
    assert mandate_id
    report = words(await removals_http.get(f"/deposes/{mandate_id.group(1)}/signaler"))
    assert "merci de contacter la logistique TRAQUEUR : 04 79 00 00 00 ou logistique@exemple.fr" in report
    accepted = await _post(removals_http, f"/deposes/{mandate_id.group(1)}/accepter", f"/deposes/{mandate_id.group(1)}")
    assert accepted.status_code == 303
    vin = requester.vins[0]
    await eventually(lambda: any(subject(m) == f"Acceptation de votre demande de dépose {vin}"
                                 for m in sink.to("parc@exemple.fr")))
    alert = next(m for m in sink.to("parc@exemple.fr") if subject(m) == f"Acceptation de votre demande de dépose {vin}")
    assert {a.strip() for a in str(alert["To"]).split(",")} == {tracking, "chef@exemple.fr", "parc@exemple.fr"}
    monkeypatch.setattr(get_settings(), "removal_logistics_contact", "")
    assert 'id="logistics"' not in (await removals_http.get(f"/deposes/{mandate_id.group(1)}")).text


async def test_the_new_request_page_and_model_file_list_the_main_deposers(removals_http: httpx.AsyncClient) -> None:
    """«Vos principaux déposeurs sont : …»: the deposers this requester used most first (name and Code
    distributeur), on the page and on the model file's second sheet; the file still uploads as it is."""
    requester, usual, other = make_requester(4), make_deposer(), make_deposer()
    create_request(requester, [line(requester, requester.vins[0], usual), line(requester, requester.vins[1], usual),
                               line(requester, requester.vins[2], other)])
    await login(removals_http, requester.email)
    page = await removals_http.get("/demandes/nouvelle")
    assert "Vos principaux déposeurs sont :" in text(page)
    table = page.text.split('id="deposers"')[1].split("</table>")[0]
    assert table.index(f"<td>{usual.name}</td><td>{usual.code}</td>") < table.index(
        f"<td>{other.name}</td><td>{other.code}</td>")
    model = await removals_http.get("/demandes/modele.xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(model.content), read_only=True)
    assert workbook.sheetnames == ["Demande de dépose", "Vos principaux déposeurs"]
    listed = list(workbook["Vos principaux déposeurs"].iter_rows(values_only=True))
    assert listed[0] == ("Nom du déposeur", "Code Distributeur") and listed[1:3] == [
        (usual.name, usual.code), (other.name, other.code)]
    examples = list(workbook["Demande de dépose"].iter_rows(values_only=True))
    assert examples[1][:3] == (requester.vins[3], requester.subscriptions[requester.vins[3]], usual.code)
    uploaded = await _post(removals_http, "/demandes/nouvelle", "/demandes/nouvelle",
                           {"tracking_email": "suivi@exemple.fr", "description": ""},
                           files={"fichier": ("modele.xlsx", model.content, XLSX)})
    assert uploaded.status_code == 303, words(uploaded)[-800:]  # the model as downloaded is a valid request


async def test_suivi_des_deposes_lists_every_mandate_with_filters_and_export(removals_http: httpx.AsyncClient) -> None:
    """One screen for every vehicle of every request of the account: filters by text, status, deposer, request
    and desired date, a French message for a filter that cannot be read, the same rows in the XLSX export."""
    requester, stranger, a, b = make_requester(4), make_requester(1), make_deposer(), make_deposer()
    v = requester.vins
    soon, later = date.today() + timedelta(days=10), date.today() + timedelta(days=40)
    _, n1 = create_request(requester, [line(requester, v[0], a, when=soon), line(requester, v[1], b, when=soon)])
    _, n2 = create_request(requester, [line(requester, v[2], a, when=later), line(requester, v[3], a, when=later)])
    create_request(stranger, [line(stranger, stranger.vins[0], a)])
    await login(removals_http, requester.email)
    home = await removals_http.get("/")
    assert 'href="/suivi"' in home.text

    async def shown(**params: str) -> set[str]:
        page = await removals_http.get("/suivi", params=params)
        assert page.status_code == 200, words(page)[-500:]
        return set(re.findall(r'<tr data-vin="(\w{17})"', page.text))

    assert await shown() == set(v)  # never another account's vehicle
    page = words(await removals_http.get("/suivi"))
    assert f"#{n1}" in page and f"#{n2}" in page and f"{b.name} ({b.code})" in page
    assert await shown(deposeur=str(b.id)) == {v[1]}
    assert await shown(demande=f"#{n2}") == {v[2], v[3]}
    assert await shown(du=later.isoformat()) == {v[2], v[3]}
    assert await shown(au=soon.isoformat(), deposeur=str(a.id)) == {v[0]}
    assert await shown(q=v[3][-6:]) == {v[3]}
    assert await shown(statut="prevenu") == set()  # nothing told yet: all Nouvelle
    assert await shown(statut="nouvelle") == set(v)
    bad = await removals_http.get("/suivi", params={"demande": "abc", "du": "31/02/2026",
                                                    "deposeur": "99999999999999999999999"})
    assert bad.status_code == 422
    assert "N° demande : nombre entier positif attendu, trouvé « abc »." in text(bad)
    assert "Date souhaitée du : date attendue (aaaa-mm-jj), trouvé « 31/02/2026 »." in text(bad)
    assert "Déposeur : nombre entier positif attendu" in text(bad)
    export = await removals_http.get("/suivi/export.xlsx", params={"deposeur": str(a.id)})
    assert export.headers["content-type"] == XLSX
    rows = list(openpyxl.load_workbook(io.BytesIO(export.content), read_only=True).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("N° demande", "Marque", "Modèle", "VIN") and rows[0][-2:] == (
        "Date de création de la demande", "Mis à jour le")
    assert {r[3]: r[0] for r in rows[1:]} == {v[0]: f"#{n1}", v[2]: f"#{n2}", v[3]: f"#{n2}"}


async def test_place_and_date_are_free_unless_the_account_requires_them(removals_http: httpx.AsyncClient,
                                                                        dev_worker: Client) -> None:
    """As in the seed, «Lieu de dépose» and «Date de dépose souhaitée» are free fields: a file without them makes a
    request (shown «non précisé» to the deposer, no overdue alert); the requester's setting makes them required."""
    requester, deposer = make_requester(3), make_deposer()
    v = requester.vins
    await login(removals_http, requester.email)
    home = await removals_http.get("/")
    assert "Lieu de dépose et date de dépose souhaitée : champs libres dans vos fichiers de demande." in words(home)
    assert "Champs libres : lieu de dépose" in text(await removals_http.get("/demandes/nouvelle"))
    free = xlsx([v[0], requester.subscriptions[v[0]], deposer.code, None, None, None])
    uploaded = await _post(removals_http, "/demandes/nouvelle", "/demandes/nouvelle",
                           {"tracking_email": "suivi@exemple.fr"}, files={"fichier": ("libre.xlsx", free, XLSX)})
    assert uploaded.status_code == 303, words(uploaded)[-800:]
    recap = await removals_http.get(uploaded.headers["location"])
    action = re.search(r'action="(/demandes/recapitulatif/[^"]+/confirmer)"', recap.text)
    assert action
    confirmed = await _post(removals_http, action.group(1), uploaded.headers["location"])
    assert confirmed.status_code == 303
    with session_scope() as session:
        mandate = session.scalars(select(Mandate).where(Mandate.vin == v[0])).one()
        assert (mandate.lieu, mandate.desired_date) == (None, None)
        row = queries.by_id(session, mandate.id)
        assert row is not None and process.mandate_input(row, get_settings()).alert_at is None  # no overdue alert
    await eventually(lambda: _status(v[0]) == "prevenu")  # the launcher ran: the deposer's mail was accepted
    await login(removals_http, deposer.email)
    page = words(await removals_http.get(f"/deposes/{mandate.id}"))
    assert "Lieu de dépose non précisé Date souhaitée non précisée" in page

    await login(removals_http, requester.email)
    saved = await _post(removals_http, "/compte/parametres", "/", {"place_date_required": "oui"})
    assert "obligatoires dans vos fichiers de demande" in text(await removals_http.get(saved.headers["location"]))
    assert "obligatoires pour votre compte" in text(await removals_http.get("/demandes/nouvelle"))
    refused = await _post(removals_http, "/demandes/nouvelle", "/demandes/nouvelle", {"tracking_email": "s@exemple.fr"},
                          files={"fichier": ("libre.xlsx", xlsx([v[1], requester.subscriptions[v[1]], deposer.code,
                                                                 None, None, None]), XLSX)})
    assert refused.status_code == 422
    assert "Ligne 2, colonne « Lieu de dépose » : cellule obligatoire vide" in text(refused)
    assert "Ligne 2, colonne « Date de dépose souhaitée » : cellule obligatoire vide" in text(refused)
    await _post(removals_http, "/compte/parametres", "/", {})  # back to the seed's free fields
    with session_scope() as session:
        assert not upload.place_date_required(session, organisation_id=requester.id)


def _status(vin: str) -> str:
    with session_scope() as session:
        return session.scalars(select(Mandate.status).where(Mandate.vin == vin)).one()


def test_the_demo_loads_again_with_declared_locations_and_the_same_vehicles() -> None:
    """`make run` loads the demo on every start: again, it keeps its vehicles (same VINs) and their
    «Emplacement déclaré» (an edited one is kept)."""
    with session_scope() as session:
        before = {vin: loc for vin, loc in session.execute(select(TrackedVehicle.vin, TrackedVehicle.declared_location)
                                                           .where(TrackedVehicle.vin.like("VF1%")))}
        edited = next(iter(before))
        session.execute(update(TrackedVehicle).where(TrackedVehicle.vin == edited).values(declared_location="Modifié"))
        load_removals_demo(session)
    with session_scope() as session:
        after = {vin: loc for vin, loc in session.execute(select(TrackedVehicle.vin, TrackedVehicle.declared_location)
                                                          .where(TrackedVehicle.vin.like("VF1%")))}
    assert set(after) == set(before) and after[edited] == "Modifié"
    assert sum(1 for loc in after.values() if loc) > len(after) // 2  # most demo vehicles declare one
