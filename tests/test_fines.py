"""Onglet Amendes over HTTP, on the real dev server, worker, PostgreSQL and SMTP sink: recording a manual fine
starts its follow-up workflow (mail with the driver-space link), an ANTAI fine or an organisation without an
activated Contraventions workflow starts nothing; bad input is refused next to the fields; XLSX export; 404/403."""

import asyncio
import io
import re
from datetime import date
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
            "paiement": "", "source": "Ajout manuel", "montant": "35,00", "workflow_enabled": "1"} | fields
    return await http.post(path, data={"csrf_token": csrf_from(page.text), **form})


def _seen(page: httpx.Response) -> str:
    """The words of the page as read on screen: tags dropped, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(page)).split())


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


# --- «Workflow activé» per fine, the Contraventions workflow picked, the Actions and «Paiement» columns ---

def _second_definition(org_id: int, name: str, *, enabled: bool = True) -> int:
    """Another Contraventions workflow of the organisation (one Mail step with the first template)."""
    with session_scope() as session:
        template = session.scalars(select(MailTemplate).where(MailTemplate.organisation_id == org_id,
                                                              MailTemplate.name == "Amende à régler")).one()
        definition = WorkflowDefinition(organisation_id=org_id, name=name, family="contraventions", enabled=enabled,
                                        steps=[{"type": "mail", "name": "Mail FPS", "to": "utilisateur", "cc": "",
                                                "template_id": template.id},
                                               {"type": "attente", "name": "Attente 10j", "days": 10}])
        session.add(definition)
        session.flush()
        return definition.id


def _definition_id(org_id: int, name: str) -> int:
    with session_scope() as session:
        return session.scalars(select(WorkflowDefinition.id).where(WorkflowDefinition.organisation_id == org_id,
                                                                   WorkflowDefinition.name == name)).one()


async def test_workflow_activé_unchecked_records_the_fps_without_a_followup(http: httpx.AsyncClient,
                                                                          dev_worker: Client) -> None:
    org = _org()
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    tab = await http.get(f"/materiels/{vehicle.id}/amendes")
    assert re.search(r'<input type="checkbox" id="workflow_enabled" name="workflow_enabled" value="1"\s+checked>',
                     tab.text)  # on by default when a Contraventions workflow is activated
    numero = f"FPS{uuid4().hex[:8]}"
    saved = await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero, workflow_enabled="")
    assert saved.status_code == 303
    fine = _fine(numero)
    assert (fine.status, fine.workflow_id, fine.workflow_enabled, fine.type_amende) == (None, None, False, "FPS")
    assert _count(FollowUp, org.id) == 0
    assert await _workflow_missing(dev_worker, f"fine-{fine.id}")
    tab = await http.get(saved.headers["location"])
    assert "« Workflow activé » décoché : aucun workflow de suivi pour cette amende." in text(tab)
    assert 'data-status="">-</td>' in _row(tab, numero)
    page = text(await http.get(f"/amendes/{fine.id}"))
    assert "Workflow activé à la saisie : Non" in _seen(await http.get(f"/amendes/{fine.id}"))
    assert "Aucun workflow de suivi pour cette amende." in page


async def test_the_manager_picks_the_contraventions_workflow_that_applies(http: httpx.AsyncClient,
                                                                          dev_worker: Client) -> None:
    org = _org()
    first = _definition_id(org.id, "Suivi des amendes")
    second = _second_definition(org.id, "WF-FPS 10 jours")
    off = _second_definition(org.id, "WF-FPS désactivé", enabled=False)
    vehicle = _vehicle(org.driver_ids[0])
    path = f"/materiels/{vehicle.id}/amendes"
    await login(http, org.manager_email)
    tab = await http.get(path)
    picker = re.search(r'<select id="workflow_definition_id".*?</select>', tab.text, re.S)
    assert picker and "Suivi des amendes" in picker.group(0) and "WF-FPS 10 jours" in picker.group(0)
    assert "WF-FPS désactivé" not in picker.group(0) and "Relevé km" not in picker.group(0)
    assert "« WF-FPS 10 jours », « Suivi des amendes »" in text(tab)  # the most recently updated first

    # Refused next to the picker, nothing written: none picked among two, a deactivated one, another family's.
    compteurs = _second_definition(org.id, "Compteurs déguisé")
    with session_scope() as session:
        session.get(WorkflowDefinition, compteurs).family = "compteurs"  # type: ignore[union-attr]
    for picked, message in (("", "Choisissez le workflow Contraventions à appliquer à cette amende."),
                            (str(off), "Ce workflow n'est pas un workflow Contraventions activé"),
                            (str(compteurs), "Ce workflow n'est pas un workflow Contraventions activé"),
                            ("abc", "Ce workflow n'est pas un workflow Contraventions activé")):
        refused = await _post(http, path, numero="CHOIX-1", workflow_definition_id=picked)
        assert refused.status_code == 422
        error = re.search(r'<p class="field-error" id="workflow_definition_id-error">(.*?)</p>', text(refused))
        assert error and message in error.group(1), picked
    assert _count(Fine, org.id) == 0

    saved = await _post(http, path, numero="CHOIX-1", workflow_definition_id=str(first))
    assert saved.status_code == 303
    fine = _fine("CHOIX-1")
    assert (fine.status, fine.workflow_enabled) == ("en_cours", True)
    assert "Workflow de suivi lancé : « Suivi des amendes »." in text(await http.get(path))
    with session_scope() as session:
        followup = session.scalars(select(FollowUp).where(FollowUp.fine_id == fine.id)).one()
        assert followup.definition_name == "Suivi des amendes"
    await _first_timer(dev_worker, f"fine-{fine.id}")
    assert await dev_worker.get_workflow_handle(f"fine-{fine.id}").query("current_step") == "Attente 5j"

    saved = await _post(http, path, numero="CHOIX-2", workflow_definition_id=str(second))
    fine = _fine("CHOIX-2")
    await _first_timer(dev_worker, f"fine-{fine.id}")
    assert await dev_worker.get_workflow_handle(f"fine-{fine.id}").query("current_step") == "Attente 10j"
    page = text(await http.get(f"/amendes/{fine.id}"))
    assert "Workflow activé à la saisie : Oui" in _seen(await http.get(f"/amendes/{fine.id}"))
    assert "WF-FPS 10 jours" in page
    assert "En cours" in page


async def _pay(fine: Fine, proof: bytes = b"%PDF-1.7\n% preuve", filename: str = "preuve-paiement.pdf") -> None:
    """The driver declares the payment through his Espace Conducteur link (as from the mail)."""
    from core.settings import get_settings
    from services.campaigns.links import driver_space_url

    assert fine.driver_id is not None
    link = driver_space_url(get_settings(), fine.driver_id)
    async with httpx.AsyncClient(timeout=30) as driver_browser:
        paid = await driver_browser.post(f"{link}/amendes/{fine.id}", data={"date_paiement": "10/06/2025"},
                                         files={"justificatif": (filename, proof, "application/pdf")})
        assert paid.status_code == 200, text(paid)


async def test_fines_table_has_the_paiement_date_and_the_actions(http: httpx.AsyncClient,
                                                                 dev_worker: Client) -> None:
    org = _org(followup=False)
    vehicle = _vehicle(org.driver_ids[0])
    path = f"/materiels/{vehicle.id}/amendes"
    await login(http, org.manager_email)
    for numero in ("TAB-PAYEE", "TAB-DUE"):
        assert (await _post(http, path, numero=numero)).status_code == 303
    await _pay(_fine("TAB-PAYEE"))
    tab = await http.get(path)
    header = re.search(r"<thead>(.*?)</thead>", tab.text, re.S)
    assert header and re.findall(r"<th>(.*?)</th>", header.group(1)) == [
        "N° amende", "Date", "Immatriculation", "Classe", "Type", "Paiement", "Source", "Montant", "Statut", "Actions"]
    paid, due = _row(tab, "TAB-PAYEE"), _row(tab, "TAB-DUE")
    assert 'data-paid="2025-06-10">10/06/2025' in paid and "Justificatif" in paid
    assert 'data-paid="">-' in due and "Justificatif" not in due
    assert ">Voir</a>" in paid and "Modifier" not in paid and "Supprimer" not in paid  # paid: view only
    due_fine = _fine("TAB-DUE")
    assert f'href="/amendes/{due_fine.id}?depuis=materiels"' in due and ">Voir</a>" in due
    assert f'href="/amendes/{due_fine.id}/modifier?depuis=materiels"' in due
    assert f'action="/amendes/{due_fine.id}/supprimer"' in due
    assert "Voulez-vous vraiment supprimer l'amende N° TAB-DUE ?" in text(tab)
    assert "Tarif" in text(tab)  # the free "minoré / majoré" field keeps a label of its own in the form


async def test_view_and_edit_an_unpaid_fine_and_a_paid_one_stays_as_it_is(http: httpx.AsyncClient,
                                                                         dev_worker: Client) -> None:
    org = _org(followup=False)
    vehicle, other = _vehicle(org.driver_ids[0]), _vehicle(org.driver_ids[1])
    path = f"/utilisateurs/{org.driver_ids[0]}/amendes"
    await login(http, org.manager_email)
    for numero in ("EDIT-1", "EDIT-2"):
        assert (await _post(http, path, numero=numero, immatriculation=vehicle.immatriculation)).status_code == 303
    fine = _fine("EDIT-1")
    page = await http.get(f"/amendes/{fine.id}?depuis=utilisateurs")
    assert page.status_code == 200
    shown = _seen(page)
    missing = [v for v in ("Amende N° EDIT-1", "03/06/2025", vehicle.immatriculation, "2ème classe", "FPS",
                                    "35,00 €", "Ajout manuel", "Créée par Gestionnaire Test",
                                    "Pas encore déclarée par l'utilisateur") if v not in shown]
    assert not missing, (missing, shown)
    assert f'href="{path}">← Retour aux amendes' in page.text

    form_page = await http.get(f"/amendes/{fine.id}/modifier?depuis=utilisateurs")
    assert form_page.status_code == 200 and 'value="EDIT-1"' in form_page.text and 'value="35,00"' in form_page.text
    token = csrf_from(form_page.text)
    edit = {"csrf_token": token, "numero": "EDIT-1", "date_infraction": "04/06/2025",
            "immatriculation": other.immatriculation.lower().replace("-", ""), "classe": "4ème classe",
            "type_amende": "FPS", "paiement": "Majoré", "source": "Ajout manuel", "montant": "135", "depuis":
            "utilisateurs"}
    for bad, field, message in (({"numero": "EDIT-2"}, "numero", "Une amende porte déjà ce numéro."),
                                ({"montant": "beaucoup"}, "montant", "Montant invalide"),
                                ({"immatriculation": "ZZ-999-ZZ"}, "immatriculation", "Immatriculation inconnue")):
        refused = await http.post(f"/amendes/{fine.id}/modifier", data=edit | bad)
        assert refused.status_code == 422
        error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', text(refused))
        assert error and message in error.group(1)
        assert "L'amende n'a pas été modifiée" in text(refused)
    assert _fine("EDIT-1").classe == "2ème classe"

    saved = await http.post(f"/amendes/{fine.id}/modifier", data=edit)
    assert saved.status_code == 303 and saved.headers["location"] == f"/amendes/{fine.id}?depuis=utilisateurs"
    shown = _seen(await http.get(saved.headers["location"]))
    assert "L'amende N° EDIT-1 est modifiée." in shown and "Modifiée par Gestionnaire Test" in shown
    assert all(v in shown for v in ("04/06/2025", other.immatriculation, "4ème classe", "Majoré", "135,00 €"))
    edited = _fine("EDIT-1")
    assert (edited.vehicle_id, edited.driver_id) == (other.id, org.driver_ids[1])  # the vehicle's driver now

    # Paid: no edit, no deletion, whatever is posted.
    await _pay(edited)
    assert (await http.get(f"/amendes/{fine.id}")).status_code == 200
    assert "Modifier" not in text(await http.get(f"/amendes/{fine.id}")).split("<h2>Amende</h2>")[0]
    refused = await http.post(f"/amendes/{fine.id}/modifier", data=edit | {"classe": "1ère classe"})
    assert refused.status_code == 303
    assert ("L'amende N° EDIT-1 est réglée (paiement du 10/06/2025) : elle ne peut plus être modifiée."
            in text(await http.get(refused.headers["location"])))
    assert _fine("EDIT-1").classe == "4ème classe"


async def test_a_running_followup_keeps_what_it_follows(http: httpx.AsyncClient, dev_worker: Client) -> None:
    org = _org()
    vehicle, other = _vehicle(org.driver_ids[0]), _vehicle(org.driver_ids[1])
    await login(http, org.manager_email)
    assert (await _post(http, f"/materiels/{vehicle.id}/amendes", numero="SUIVI-1")).status_code == 303
    fine = _fine("SUIVI-1")
    assert fine.status == "en_cours"
    form_page = await http.get(f"/amendes/{fine.id}/modifier")
    assert "Un workflow de suivi est en cours" in text(form_page)
    edit = {"csrf_token": csrf_from(form_page.text), "numero": "SUIVI-1", "date_infraction": "03/06/2025",
            "immatriculation": vehicle.immatriculation, "classe": "2ème classe", "type_amende": "FPS",
            "paiement": "", "source": "Ajout manuel", "montant": "35"}
    for bad, field, what in (({"immatriculation": other.immatriculation}, "immatriculation", "l'immatriculation"),
                             ({"source": "Antai"}, "source", "la source"),
                             ({"type_amende": "Stationnement"}, "type_amende", "le type (FPS)")):
        refused = await http.post(f"/amendes/{fine.id}/modifier", data=edit | bad)
        assert refused.status_code == 422
        error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', text(refused))
        assert error and error.group(1) == ("Un workflow de suivi est en cours pour cette amende : annulez-le dans "
                                            f"« Workflows utilisateurs » avant de changer {what}.")
    assert (_fine("SUIVI-1").vehicle_id, _fine("SUIVI-1").source) == (vehicle.id, "Ajout manuel")
    saved = await http.post(f"/amendes/{fine.id}/modifier", data=edit | {"montant": "45"})
    assert saved.status_code == 303 and str(_fine("SUIVI-1").montant) == "45.00"


async def test_deleting_an_unpaid_fine_cancels_its_followup_a_paid_one_is_kept(http: httpx.AsyncClient,
                                                                               dev_worker: Client) -> None:
    org = _org()
    vehicle = _vehicle(org.driver_ids[0])
    path = f"/materiels/{vehicle.id}/amendes"
    await login(http, org.manager_email)
    assert (await _post(http, path, numero="SUPPR-1")).status_code == 303
    assert (await _post(http, path, numero="SUPPR-2")).status_code == 303
    doomed, kept = _fine("SUPPR-1"), _fine("SUPPR-2")
    await _first_timer(dev_worker, f"fine-{doomed.id}")
    await _pay(kept)
    assert await result_of(dev_worker, f"fine-{kept.id}") == "valide"
    tab = await http.get(path)
    token = csrf_from(tab.text)

    deleted = await http.post(f"/amendes/{doomed.id}/supprimer", data={"csrf_token": token, "depuis": "materiels"})
    assert deleted.status_code == 303 and deleted.headers["location"] == path
    tab = await http.get(path)
    assert ("L'amende N° SUPPR-1 est supprimée. Son workflow de suivi « Suivi des amendes » est annulé."
            in text(tab))
    assert 'data-fine="SUPPR-1"' not in tab.text
    assert await result_of(dev_worker, f"fine-{doomed.id}") == "annule"  # told through the relay
    with session_scope() as session:
        followup = session.scalars(select(FollowUp).where(FollowUp.workflow_id == f"fine-{doomed.id}")).one()
        assert (followup.status, followup.fine_id, followup.reference) == ("annule", None, "SUPPR-1")
        assert followup.ended_reason == "Annulé par Gestionnaire Test (amende supprimée)"
    suivi = text(await http.get("/workflows-utilisateurs"))
    assert "SUPPR-1" in suivi  # the cancelled follow-up stays in the suivi with the fine's number

    refused = await http.post(f"/amendes/{kept.id}/supprimer", data={"csrf_token": token})
    assert refused.status_code == 303
    assert ("L'amende N° SUPPR-2 est réglée (paiement du 10/06/2025) : elle ne peut pas être supprimée."
            in text(await http.get(refused.headers["location"])))
    assert _fine("SUPPR-2").status == "valide"
    assert (await http.get(f"/amendes/{doomed.id}")).status_code == 404


async def test_the_manager_opens_the_drivers_payment_proof_only_his_organisation(http: httpx.AsyncClient,
                                                                                 dev_worker: Client) -> None:
    org = _org(followup=False)
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    assert (await _post(http, f"/materiels/{vehicle.id}/amendes", numero="PREUVE-1")).status_code == 303
    fine = _fine("PREUVE-1")
    proof_bytes = b"%PDF-1.7\n% la preuve de paiement du conducteur"
    await _pay(fine, proof_bytes, "reçu « FPS ».pdf")
    page = await http.get(f"/amendes/{fine.id}")
    link = re.search(rf'href="(/amendes/{fine.id}/justificatifs/\d+)"[^>]*>(.*?)</a>', page.text)
    assert link and text(page).count("reçu « FPS ».pdf") >= 1 and "10/06/2025" in text(page)
    opened = await http.get(link.group(1))
    assert opened.status_code == 200 and opened.content == proof_bytes
    assert opened.headers["content-type"] == "application/pdf"
    assert opened.headers["content-disposition"].startswith("inline; filename*=UTF-8''re%C3%A7u%20%C2%AB%20FPS")
    assert opened.headers["x-content-type-options"] == "nosniff"
    tab_row = _row(await http.get(f"/materiels/{vehicle.id}/amendes"), "PREUVE-1")
    assert f'href="{link.group(1)}"' in tab_row  # also from the «Paiement» cell of the table

    proof_id = int(link.group(1).rsplit("/", 1)[1])
    other_fine_path = f"/amendes/{fine.id + 100000}/justificatifs/{proof_id}"
    assert (await http.get(other_fine_path)).status_code == 404  # the proof belongs to this fine only
    await http.post("/logout", data={"csrf_token": csrf_from(page.text)})
    stranger = _org(followup=False)
    await login(http, stranger.manager_email)
    for path in (link.group(1), f"/amendes/{fine.id}", f"/amendes/{fine.id}/modifier"):
        assert (await http.get(path)).status_code == 404, path
    own = await http.get(f"/utilisateurs/{stranger.driver_ids[0]}/amendes")
    assert (await http.post(f"/amendes/{fine.id}/supprimer",
                            data={"csrf_token": csrf_from(own.text)})).status_code == 404
    assert _fine("PREUVE-1").date_paiement is not None


async def test_a_viewer_sees_the_fine_and_its_proof_but_cannot_change_it(http: httpx.AsyncClient) -> None:
    with session_scope() as session:
        garonne = session.scalars(select(Organisation).where(Organisation.slug == "garonne")).one()
        demo_vehicle = session.scalars(select(Vehicle).where(Vehicle.organisation_id == garonne.id,
                                                             Vehicle.driver_id.is_not(None))
                                       .order_by(Vehicle.id.desc())).first()
        assert demo_vehicle is not None
        fine = Fine(organisation_id=garonne.id, numero=f"LECT-{uuid4().hex[:6]}", date_infraction=date(2025, 6, 3),
                    immatriculation=demo_vehicle.immatriculation, vehicle_id=demo_vehicle.id,
                    driver_id=demo_vehicle.driver_id, type_amende="FPS", source="Ajout manuel")
        session.add(fine)
        session.flush()
        fine_id = fine.id
    await login(http, "lecture@garonne.example")
    page = await http.get(f"/amendes/{fine_id}")
    assert page.status_code == 200 and "Modifier" not in text(page) and "Supprimer" not in text(page)
    assert (await http.get(f"/amendes/{fine_id}/modifier")).status_code == 403
    token = csrf_from(page.text)
    assert (await http.post(f"/amendes/{fine_id}/supprimer", data={"csrf_token": token})).status_code == 403
    with session_scope() as session:
        assert session.get(Fine, fine_id) is not None
        session.delete(session.get(Fine, fine_id))


async def test_a_payment_is_declared_once_and_never_on_a_deleted_fine(http: httpx.AsyncClient) -> None:
    from core.settings import get_settings
    from services.campaigns.links import driver_space_url
    from services.campaigns.service import fineactions
    from services.campaigns.service.fines import declare_payment
    from tests.support.waiting import wait_until

    org = _org(followup=False)
    vehicle = _vehicle(org.driver_ids[0])
    await login(http, org.manager_email)
    for numero in ("UNE-FOIS", "COURSE"):
        assert (await _post(http, f"/materiels/{vehicle.id}/amendes", numero=numero)).status_code == 303
    once = _fine("UNE-FOIS")
    await _pay(once)
    link = driver_space_url(get_settings(), org.driver_ids[0])
    async with httpx.AsyncClient(timeout=30) as driver_browser:  # the same form posted again (back, resend)
        again = await driver_browser.post(f"{link}/amendes/{once.id}", data={"date_paiement": "11/06/2025"},
                                          files={"justificatif": ("autre.pdf", b"%PDF-1.7 autre", "application/pdf")})
    assert again.status_code == 422
    assert "Le paiement de l'amende UNE-FOIS est déjà déclaré (payée le 10/06/2025)." in text(again)
    with session_scope() as session:
        assert str(_fine("UNE-FOIS").date_paiement) == "2025-06-10" and fines_proofs(session, once.id) == 1

    # The manager deletes the other fine while the driver declares its payment: the driver waits for the lock,
    # then finds it gone (no error page, no proof without its fine).
    race = _fine("COURSE")
    with session_scope() as manager:
        locked = fineactions.get_fine(manager, organisation_id=org.id, fine_id=race.id)
        assert locked is not None
        assert fineactions.delete_fine(manager, get_settings(), fine=locked, by="Gestionnaire Test") is None

        def declare() -> str | None:
            with session_scope() as driver:
                fine = driver.get(Fine, race.id)
                assert fine is not None
                return declare_payment(driver, fine=fine, paid_on=date(2025, 6, 10), filename="p.pdf",
                                       data=b"%PDF-1.7 p")

        answer = asyncio.create_task(asyncio.to_thread(declare))
        await wait_until(lambda: _lock_waiters() > 0, seconds=10, what="the driver waiting for the fine's lock")
    assert await answer == "Cette amende a été supprimée par votre gestionnaire : rien à déclarer."
    with session_scope() as session:
        assert session.get(Fine, race.id) is None and fines_proofs(session, race.id) == 0


def fines_proofs(session: object, fine_id: int) -> int:
    from services.campaigns.service.fines import proofs_count

    return proofs_count(session, fine_id)  # type: ignore[arg-type]


def _lock_waiters() -> int:
    """Sessions waiting for a fine's row lock (the driver's declaration behind the manager's deletion)."""
    from sqlalchemy import text as sql

    with session_scope() as session:
        return session.scalar(sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND query LIKE '%campaigns.fines%FOR UPDATE%'")) or 0
