"""Onglet Amendes over HTTP, on the real dev server, worker, PostgreSQL and SMTP sink: recording a manual fine
starts its follow-up workflow (mail with the driver-space link), an ANTAI fine or an organisation without an
activated Contraventions workflow starts nothing; bad input is refused next to the fields; XLSX export; 404/403."""

import asyncio
import io
import re
from uuid import uuid4

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import session_scope
from core.models import Organisation, OutboxMessage
from services.campaigns.models import Driver, Fine, FollowUp, MailTemplate, Vehicle, WorkflowDefinition
from services.campaigns.service.fines import FINE_HEADERS
from tests.support.factories import TestOrg, make_org
from tests.support.smtp import SmtpSink, body_text
from tests.support.waiting import result_of, started
from tests.support.web import csrf_from, login, text

FIRST_MAIL = ("Bonjour {{prenom}},\n\nVotre amende N° {{numero_amende}} du {{date_amende}} ({{montant_amende}}) "
              "attend votre règlement. Déclarez la date de paiement et joignez la preuve ici : {{lien_connexion}}")


def _org(*, followup: bool = True) -> TestOrg:
    """A fresh organisation (2 drivers, one vehicle each) and its Contraventions workflow, activated or not."""
    org = make_org(count=2)
    with session_scope() as session:
        first = MailTemplate(organisation_id=org.id, name="Amende à régler", subject="Amende {{numero_amende}}",
                             body=FIRST_MAIL)
        relance = MailTemplate(organisation_id=org.id, name="Relance amende", subject="Relance : {{numero_amende}}",
                               body="Rappel : amende {{numero_amende}} à régler. {{lien_connexion}}")
        session.add_all([first, relance])
        session.flush()
        session.add(WorkflowDefinition(
            organisation_id=org.id, name="Suivi des amendes", family="contraventions", enabled=followup,
            steps=[{"type": "mail", "name": "Mail amende", "to": "utilisateur", "cc": "", "template_id": first.id},
                   {"type": "attente", "name": "Attente 5j", "days": 5},
                   {"type": "mail", "name": "Relance", "to": "utilisateur", "cc": "", "template_id": relance.id},
                   {"type": "attente", "name": "Attente 5j", "days": 5}]))
        if not followup:  # an activated workflow of another family must not follow fines up either
            session.add(WorkflowDefinition(organisation_id=org.id, name="Relevé km", family="compteurs", enabled=True,
                                           steps=[{"type": "mail", "to": "utilisateur", "template_id": first.id}]))
    return org


def _vehicle(driver_id: int) -> Vehicle:
    with session_scope() as session:  # expire_on_commit=False: the row stays readable once detached
        return session.scalars(select(Vehicle).where(Vehicle.driver_id == driver_id)).one()


def _fine(numero: str) -> Fine:
    with session_scope() as session:
        return session.scalars(select(Fine).where(Fine.numero == numero)).one()


def _count(model: type[Fine] | type[FollowUp], organisation_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(model.organisation_id == organisation_id)) or 0


async def _post(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    form = {"numero": "", "date_infraction": "03/06/2025", "classe": "2ème classe", "type_amende": "FPS",
            "paiement": "", "source": "Ajout manuel", "montant": "35,00"} | fields
    return await http.post(path, data={"csrf_token": csrf_from(page.text), **form})


def _row(page: httpx.Response, numero: str) -> str:
    match = re.search(rf'<tr data-fine="{re.escape(numero)}">(.*?)</tr>', page.text, re.S)
    assert match, f"no row for {numero}"
    return match.group(1)


async def _workflow_missing(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False


async def _first_timer(client: Client, workflow_id: str) -> None:
    """Until the workflow starts its first Attente timer, i.e. once the first mail was accepted by the sink.

    No sleep: the dev server long-polls the workflow's history and answers as each new event is written.
    """
    async def timer_started() -> None:
        handle = await started(client, workflow_id)
        async for event in handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                return
        raise AssertionError(f"{workflow_id} closed before its first timer")

    await asyncio.wait_for(timer_started(), timeout=60)


async def test_manual_fine_starts_its_followup_and_the_driver_gets_the_link(http: httpx.AsyncClient,
                                                                          dev_worker: Client,
                                                                          sink: SmtpSink) -> None:
    org = _org()
    driver_id = org.driver_ids[0]
    vehicle = _vehicle(driver_id)
    await login(http, org.manager_email)
    record = await http.get(f"/materiels/{vehicle.id}")
    assert f'href="/materiels/{vehicle.id}/amendes"' in record.text  # the "Fiche | Amendes" tab bar
    tab = await http.get(f"/materiels/{vehicle.id}/amendes")
    assert "Saisir une amende" in text(tab) and "Workflow activé" in text(tab)
    assert f'value="{vehicle.immatriculation}" readonly' in tab.text  # prefilled on the vehicle's tab

    numero = f"FPS{uuid4().hex[:10].upper()}"
    saved = await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero, montant="35,5")
    assert saved.status_code == 303 and saved.headers["location"] == f"/materiels/{vehicle.id}/amendes"
    fine = _fine(numero)
    workflow_id = f"fine-{fine.id}"
    assert (fine.status, fine.workflow_id, fine.driver_id, fine.vehicle_id) == ("en_cours", workflow_id,
                                                                                 driver_id, vehicle.id)
    tab = await http.get(saved.headers["location"])
    assert f"L'amende N° {numero} est enregistrée." in text(tab) and "Suivi des amendes" in text(tab)
    row = text(tab).split(f'data-fine="{numero}"')[1].split("</tr>")[0]
    assert all(v in row for v in ("03/06/2025", vehicle.immatriculation, "2ème classe", "FPS", "Ajout manuel",
                                  "35,50 €", 'data-status="en_cours"', "En cours"))
    assert "En cours" in _row(await http.get(f"/utilisateurs/{driver_id}/amendes"), numero)
    with session_scope() as session:
        followup = session.scalars(select(FollowUp).where(FollowUp.fine_id == fine.id)).one()
        assert (followup.workflow_id, followup.driver_id, followup.reference, followup.family, followup.status) == (
            workflow_id, driver_id, numero, "contraventions", "en_cours")

    await _first_timer(dev_worker, workflow_id)
    with session_scope() as session:
        outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.key == f"{workflow_id}-step-0")).one()
        assert outbox.status == "sent"
        driver = session.get(Driver, driver_id)
        assert driver is not None and driver.email
    [mail] = sink.to(driver.email)
    assert mail["Subject"] == f"Amende {numero}"
    body = body_text(mail)
    assert f"Votre amende N° {numero} du 03/06/2025 (35,50 €)" in body
    link = re.search(r"(http://\S+/espace-conducteur/\S+)", body)  # {{lien_connexion}}
    assert link, body

    # The driver follows the link from the mail and declares the payment in the Espace Conducteur.
    async with httpx.AsyncClient(timeout=30) as driver_browser:
        space = await driver_browser.get(link.group(1))
        assert space.status_code == 200 and f"Amende n° {numero}" in text(space)
        assert "Paiement à déclarer" in text(space)
        fake = await driver_browser.post(f"{link.group(1)}/amendes/{fine.id}", data={"date_paiement": "2025-06-10"},
                                         files={"justificatif": ("preuve.pdf", b"MZ\x90 not a pdf", "application/pdf")})
        assert fake.status_code == 422 and "PDF, un JPEG ou un PNG" in text(fake)
        bad_info = await driver_browser.post(f"{link.group(1)}/informations", data={"permis_numero": "12"})
        assert bad_info.status_code == 422 and "Numéro de permis invalide" in text(bad_info)
        assert _fine(numero).date_paiement is None
        paid = await driver_browser.post(f"{link.group(1)}/amendes/{fine.id}", data={"date_paiement": "2025-06-10"},
                                         files={"justificatif": ("preuve.pdf", b"%PDF-1.7\n%...", "application/pdf")})
        assert paid.status_code == 200 and f"le paiement de l'amende {numero} est enregistré" in text(paid)
    assert await result_of(dev_worker, workflow_id) == "valide"
    assert _fine(numero).status == "valide" and str(_fine(numero).date_paiement) == "2025-06-10"
    assert "Validé" in _row(await http.get(f"/materiels/{vehicle.id}/amendes"), numero)


async def test_antai_fine_starts_no_workflow(http: httpx.AsyncClient, dev_worker: Client) -> None:
    org = _org()
    driver_id = org.driver_ids[1]
    vehicle = _vehicle(driver_id)
    await login(http, org.manager_email)
    numero = f"ANTAI{uuid4().hex[:8]}"
    tab_path = f"/utilisateurs/{driver_id}/amendes"
    saved = await _post(http, tab_path, numero=numero, immatriculation=vehicle.immatriculation, source="Antai",
                        type_amende="EXCES VITESSE", classe="4ème classe")
    assert saved.status_code == 303 and saved.headers["location"] == tab_path
    fine = _fine(numero)
    assert (fine.status, fine.workflow_id, fine.source, fine.driver_id) == (None, None, "Antai", driver_id)
    assert _count(FollowUp, org.id) == 0
    assert await _workflow_missing(dev_worker, f"fine-{fine.id}")
    tab = await http.get(tab_path)
    assert "Amende gérée par l'ANTAI : aucun workflow de suivi." in text(tab)
    row = _row(tab, numero)
    assert 'data-status="">-</td>' in row and "Antai" in row and "EXCES VITESSE" in row


async def test_without_an_activated_contraventions_workflow_nothing_starts(http: httpx.AsyncClient,
                                                                           dev_worker: Client) -> None:
    org = _org(followup=False)
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    tab = await http.get(f"/materiels/{vehicle.id}/amendes")
    assert "Aucun workflow Contraventions activé" in text(tab)
    numero = f"FPS{uuid4().hex[:8]}"
    assert (await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero)).status_code == 303
    fine = _fine(numero)
    assert (fine.status, fine.workflow_id) == (None, None)
    assert _count(FollowUp, org.id) == 0
    assert await _workflow_missing(dev_worker, f"fine-{fine.id}")
    assert 'data-status="">-</td>' in _row(await http.get(f"/materiels/{vehicle.id}/amendes"), numero)


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"immatriculation": "ZZ-999-ZZ"}, "immatriculation", "Immatriculation inconnue dans votre parc : « ZZ-999-ZZ »."),
    ({"immatriculation": "n'importe quoi"}, "immatriculation", "Immatriculation inconnue dans votre parc"),
    ({"immatriculation": "AB-001-CD"}, "immatriculation", "Ce matériel n'est pas affecté à cet utilisateur."),
    ({"numero": "DEJA-1"}, "numero", "Une amende porte déjà ce numéro."),
    ({"numero": ""}, "numero", "Le N° d'amende est obligatoire."),
    ({"montant": "trente euros"}, "montant", "Montant invalide (exemple : 35,00)."),
    ({"montant": "-5"}, "montant", "Montant invalide"),
    ({"montant": "1e12"}, "montant", "Montant invalide"),
    ({"date_infraction": "31/02/2025"}, "date_infraction", "Date de l'amende : date inexistante « 31/02/2025 »"),
    ({"date_infraction": "hier"}, "date_infraction", "date attendue au format jj/mm/aaaa"),
    ({"date_infraction": ""}, "date_infraction", "Date de l'amende : obligatoire"),
])
async def test_bad_input_is_refused_next_to_the_field_and_nothing_is_written(
        http: httpx.AsyncClient, fields: dict[str, str], field: str, message: str) -> None:
    org = _org(followup=False)
    driver_id = org.driver_ids[0]  # holds AB-000-CD; AB-001-CD is the other driver's
    path = f"/utilisateurs/{driver_id}/amendes"
    await login(http, org.manager_email)
    assert (await _post(http, path, numero="DEJA-1", immatriculation="AB-000-CD")).status_code == 303
    refused = await _post(http, path, **({"numero": "NOUVELLE-1", "immatriculation": "ab000cd"} | fields))
    assert refused.status_code == 422
    error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', text(refused))
    assert error and message in error.group(1), text(refused)
    assert "<details class=\"card\" open>" in refused.text  # the form stays open with what was typed
    assert _count(Fine, org.id) == 1


async def test_export_xlsx_has_the_headers_and_one_row_per_fine(http: httpx.AsyncClient) -> None:
    org = _org(followup=False)
    vehicle = _vehicle(org.driver_ids[0])
    other = _vehicle(org.driver_ids[1])
    await login(http, org.manager_email)
    path = f"/materiels/{vehicle.id}/amendes"
    for numero, source in (("EXP-1", "Ajout manuel"), ("EXP-2", "Antai")):
        assert (await _post(http, path, numero=numero, source=source, montant="68")).status_code == 303
    assert (await _post(http, f"/materiels/{other.id}/amendes", numero="EXP-AUTRE")).status_code == 303
    tab = await http.get(path)
    assert f'href="{path}.xlsx"' in tab.text and "Exporter" in text(tab)

    export = await http.get(f"{path}.xlsx")
    assert export.status_code == 200
    assert export.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert f'filename="amendes-materiel-{vehicle.id}.xlsx"' in export.headers["content-disposition"]
    rows = list(load_workbook(io.BytesIO(export.content), read_only=True).active.iter_rows(values_only=True))
    assert list(rows[0]) == FINE_HEADERS
    by_numero = {r[0]: dict(zip(FINE_HEADERS, r, strict=True)) for r in rows[1:]}
    assert set(by_numero) == {"EXP-1", "EXP-2"}
    assert by_numero["EXP-2"]["Source"] == "Antai" and by_numero["EXP-2"]["Montant"] == 68
    assert by_numero["EXP-1"]["Immatriculation"] == vehicle.immatriculation
    assert by_numero["EXP-1"]["Statut"] == "-"

    driver_export = await http.get(f"/utilisateurs/{org.driver_ids[1]}/amendes.xlsx")
    driver_rows = list(load_workbook(io.BytesIO(driver_export.content), read_only=True).active
                       .iter_rows(values_only=True))
    assert [r[0] for r in driver_rows[1:]] == ["EXP-AUTRE"]


async def test_other_organisation_gets_404_and_viewer_gets_403(http: httpx.AsyncClient) -> None:
    with session_scope() as session:
        garonne = session.scalars(select(Organisation).where(Organisation.slug == "garonne")).one()
        demo_vehicle = session.scalars(select(Vehicle).where(Vehicle.organisation_id == garonne.id,
                                                             Vehicle.driver_id.is_not(None))
                                       .order_by(Vehicle.id)).first()
        assert demo_vehicle is not None
        vehicle_id, driver_id, plate = demo_vehicle.id, demo_vehicle.driver_id, demo_vehicle.immatriculation
    before = _count(Fine, garonne.id)

    org = _org()
    await login(http, org.manager_email)
    own = await http.get(f"/utilisateurs/{org.driver_ids[0]}/amendes")
    for path in (f"/utilisateurs/{driver_id}/amendes", f"/materiels/{vehicle_id}/amendes",
                 f"/utilisateurs/{driver_id}/amendes.xlsx", f"/materiels/{vehicle_id}/amendes.xlsx"):
        assert (await http.get(path)).status_code == 404, path
    intrusion = {"csrf_token": csrf_from(own.text), "numero": "INTRUS", "date_infraction": "03/06/2025"}
    post = await http.post(f"/materiels/{vehicle_id}/amendes", data=intrusion)
    assert post.status_code == 404

    await http.post("/logout", data={"csrf_token": csrf_from(own.text)})
    await login(http, "lecture@garonne.example")
    tab = await http.get(f"/utilisateurs/{driver_id}/amendes")
    assert tab.status_code == 200 and "Saisir une amende" not in text(tab)
    refused = await http.post(f"/utilisateurs/{driver_id}/amendes",
                              data={"csrf_token": csrf_from(tab.text), "numero": "LECTEUR-1",
                                    "date_infraction": "03/06/2025", "immatriculation": plate})
    assert refused.status_code == 403
    assert _count(Fine, garonne.id) == before


@pytest.mark.parametrize("type_amende", ["Stationnement", "Excès de vitesse", ""])
async def test_only_fps_fines_start_the_contraventions_followup(http: httpx.AsyncClient, dev_worker: Client,
                                                                type_amende: str) -> None:
    org = _org()  # with an activated Contraventions workflow: an FPS would be followed up
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    tab = await http.get(f"/materiels/{vehicle.id}/amendes")
    assert "démarre à l'enregistrement de chaque amende de type FPS (sauf source Antai)" in text(tab)
    numero = f"STAT{uuid4().hex[:8]}"
    saved = await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero, type_amende=type_amende)
    assert saved.status_code == 303
    fine = _fine(numero)
    assert (fine.status, fine.workflow_id, fine.type_amende) == (None, None, type_amende or None)
    assert _count(FollowUp, org.id) == 0
    assert await _workflow_missing(dev_worker, f"fine-{fine.id}")
    tab = await http.get(saved.headers["location"])
    assert f"L'amende N° {numero} est enregistrée." in text(tab) and "Workflow de suivi lancé" not in text(tab)
    assert 'data-status="">-</td>' in _row(tab, numero)


def test_the_reason_a_fine_gets_no_followup() -> None:
    from services.campaigns.service.fines import no_followup_reason

    def fine(**fields: object) -> Fine:
        return Fine(**({"source": "Ajout manuel", "type_amende": "FPS", "driver_id": 1} | fields))

    assert no_followup_reason(fine()) is None
    assert no_followup_reason(fine(type_amende=" fps ")) is None  # as typed in the free field
    assert no_followup_reason(fine(type_amende="Stationnement")) == (
        "Amende de type « Stationnement » : aucun workflow de suivi (seules les amendes de type FPS sont suivies).")
    assert no_followup_reason(fine(type_amende=None)) == (
        "Amende sans type : aucun workflow de suivi (seules les amendes de type FPS sont suivies).")
    assert no_followup_reason(fine(source="Antai", type_amende="EXCES VITESSE")) == (
        "Amende gérée par l'ANTAI : aucun workflow de suivi.")
    assert no_followup_reason(fine(driver_id=None)) == "Matériel sans utilisateur : aucun workflow de suivi."


async def test_the_flash_says_why_a_fine_that_is_not_an_fps_gets_no_followup(http: httpx.AsyncClient) -> None:
    org = _org()
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    numero = f"STAT{uuid4().hex[:8]}"
    saved = await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero, type_amende="Stationnement")
    assert ("Amende de type « Stationnement » : aucun workflow de suivi (seules les amendes de type FPS sont suivies)."
            in text(await http.get(saved.headers["location"])))
