"""What drivers entered reaches their records, over HTTP on the dev server, worker, PostgreSQL and SMTP sink:
the licence and address of an «Informations» workflow on the driver's record (who entered them, when, which
workflow asked), the odometer readings with their history on the vehicle's record."""

import re
from datetime import timedelta

import httpx
from sqlalchemy import select
from temporalio.client import Client

from core.db import session_scope
from core.excel import write_xlsx
from core.settings import get_settings
from core.ui import paris, today_paris
from services.campaigns.links import driver_space_url
from services.campaigns.models import (
    DistributionList,
    Driver,
    DriverInfoEntry,
    FollowUp,
    MailTemplate,
    OdometerReading,
    Vehicle,
    WorkflowDefinition,
)
from services.campaigns.service.fleet import DRIVER_HEADERS
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_text
from tests.support.waiting import result_of, wait_until
from tests.support.web import csrf_from, login, text

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INFOS = {"permis_numero": "12ab34567", "permis_date": "15/03/2012", "permis_categories": ["B", "A2"],
         "adresse": "4 rue des Tanneurs", "code_postal": "78000", "ville": "Versailles"}


def seen(page: httpx.Response) -> str:
    """The words of the page as read on screen: tags dropped, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(page)).split())


def section(page: httpx.Response, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}">(.*?)</section>', page.text, re.S)
    assert match, f"no section {section_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def _informations_campaign(org_id: int) -> tuple[int, int]:
    """The seed's «WF-Infos permis» (family Informations: mail, 5 days, relance) and a list of every driver."""
    with session_scope() as session:
        template = MailTemplate(organisation_id=org_id, name="Informations",
                                subject="Demande de compléter les infos conducteur",
                                body="Bonjour {{prenom}} {{nom}},\n\nComplétez votre permis et votre adresse dans "
                                     "votre Espace Conducteur : {{lien_connexion}}")
        dlist = DistributionList(organisation_id=org_id, name="Yvelines", filters={})
        session.add_all([template, dlist])
        session.flush()
        definition = WorkflowDefinition(
            organisation_id=org_id, name="WF-Infos permis", family="informations", enabled=True,
            steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "", "template_id": template.id},
                   {"type": "attente", "name": "Attente 5j", "days": 5},
                   {"type": "mail", "name": "Relance", "to": "utilisateur", "cc": "", "template_id": template.id}])
        session.add(definition)
        session.flush()
        return dlist.id, definition.id


def _driver(driver_id: int) -> Driver:
    with session_scope() as session:
        driver = session.get(Driver, driver_id)
        assert driver is not None
        return driver


async def test_a_driver_answers_an_informations_step_and_the_manager_sees_it_on_the_record(
        http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink) -> None:
    org = make_org(count=2)
    list_id, definition_id = _informations_campaign(org.id)
    driver_id = org.driver_ids[0]
    await login(http, org.manager_email)
    record = await http.get(f"/utilisateurs/{driver_id}")
    assert "N° de permis" in section(record, "permis")
    assert "Pas encore renseigné par l'utilisateur" in section(record, "permis")
    assert "Aucune saisie dans l'Espace Conducteur." in section(record, "saisies")

    # The manager launches the «Informations» campaign of type Workflow.
    token = csrf_from((await http.get("/campagnes/nouvelle")).text)
    created = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": "Infos permis Yvelines",
                                                           "list_id": list_id, "kind": "workflow",
                                                           "workflow_definition_id": definition_id})
    assert created.status_code == 303, text(created)
    campaign_id = int(created.headers["location"].split("/")[2])
    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    assert await result_of(dev_worker, f"campaign-{campaign_id}") == 2
    driver = _driver(driver_id)
    await wait_until(lambda: len(sink.to(driver.email or "")) == 1, what="the Informations mail")
    [mail] = sink.to(driver.email or "")
    assert mail["Subject"] == "Demande de compléter les infos conducteur"
    link = re.search(r"(http://\S+/espace-conducteur/\S+)", body_text(mail))
    assert link, body_text(mail)

    # The driver follows the link and answers in his Espace Conducteur; a wrong postal code changes nothing.
    async with httpx.AsyncClient(timeout=30) as driver_browser:
        space = await driver_browser.get(link.group(1))
        assert space.status_code == 200 and "À compléter" in text(space)
        refused = await driver_browser.post(f"{link.group(1)}/informations", data=INFOS | {"code_postal": "7800"})
        assert refused.status_code == 422 and "Code postal invalide" in text(refused)
        assert _driver(driver_id).permis_numero is None
        done = await driver_browser.post(f"{link.group(1)}/informations", data=INFOS)
        assert done.status_code == 200 and "Merci, vos informations sont enregistrées." in text(done)
    workflow_id = f"campaign-{campaign_id}-driver-{driver_id}"
    assert await result_of(dev_worker, workflow_id) == "valide"
    with session_scope() as session:
        entry = session.scalars(select(DriverInfoEntry).where(DriverInfoEntry.driver_id == driver_id)).one()
        entered_at = paris(entry.created_at)

    # The manager sees on the driver's record what was entered, by whom, when and at which workflow's request.
    record = await http.get(f"/utilisateurs/{driver_id}")
    permis = section(record, "permis")
    assert "N° de permis 12AB34567" in permis and "Date de délivrance 15/03/2012" in permis
    assert "Catégories A2, B" in permis
    provenance = (f"Saisi par {driver.prenom} {driver.nom} (l'utilisateur, dans son Espace Conducteur) le "
                  f"{entered_at}, à la demande du workflow « WF-Infos permis ».")
    assert provenance in permis
    shown = seen(record)
    assert "Adresse 4 rue des Tanneurs Code postal 78000 Ville Versailles Département 78 – Yvelines" in shown
    assert shown.count(provenance) == 2  # under the licence and under the address
    history = section(record, "saisies")
    assert (f"{entered_at} {driver.prenom} {driver.nom} (Espace Conducteur) WF-Infos permis 12AB34567 15/03/2012 "
            "A2, B 4 rue des Tanneurs 78000 Versailles") in history
    suivi = await http.get("/workflows-utilisateurs?workflow=WF-Infos+permis&statut=valide")
    assert re.search(rf'data-workflow-id="{workflow_id}".*?Validé', suivi.text, re.S)
    other = await http.get(f"/utilisateurs/{org.driver_ids[1]}")
    assert "Aucune saisie dans l'Espace Conducteur." in section(other, "saisies")


async def test_an_address_imported_after_the_drivers_entry_is_not_credited_to_him(http: httpx.AsyncClient) -> None:
    org = make_org(drivers=[{"matricule": "INF1", "nom": "Durand", "prenom": "Léa", "email": "lea@x.example"}])
    driver_id = org.driver_ids[0]
    link = driver_space_url(get_settings(), driver_id)
    async with httpx.AsyncClient(timeout=30) as driver_browser:  # no workflow asked: he came back by himself
        assert (await driver_browser.post(f"{link}/informations", data=INFOS)).status_code == 200
    await login(http, org.manager_email)
    record = await http.get(f"/utilisateurs/{driver_id}")
    assert "Saisi par Léa Durand (l'utilisateur, dans son Espace Conducteur) le" in section(record, "permis")
    assert "à la demande du workflow" not in section(record, "permis")
    assert " - 12AB34567" in section(record, "saisies")  # no workflow in the history's «Workflow» column

    row = {h: "" for h in DRIVER_HEADERS} | {"Matricule": "INF1", "Nom": "Durand", "Prénom": "Léa",
                                             "Email": "lea@x.example", "Adresse": "9 avenue de Paris",
                                             "Code postal": "31000", "Ville": "Toulouse"}
    page = await http.get("/utilisateurs/import")
    data = write_xlsx(DRIVER_HEADERS, [list(row.values())], sheet_title="Utilisateurs")
    imported = await http.post("/utilisateurs/import", data={"csrf_token": csrf_from(page.text)},
                               files={"fichier": ("u.xlsx", data, XLSX)})
    assert imported.status_code == 303, text(imported)
    record = await http.get(f"/utilisateurs/{driver_id}")
    shown = seen(record)
    assert "Adresse 9 avenue de Paris" in shown
    assert "Modifiée depuis la dernière saisie de l'utilisateur (" in shown
    assert "adresse du fichier des utilisateurs importé." in shown
    assert "Saisi par Léa Durand" in section(record, "permis")  # the licence is still his
    assert "4 rue des Tanneurs 78000 Versailles" in section(record, "saisies")  # what he entered stays visible


async def test_odometer_readings_appear_on_the_vehicle_record_with_their_history(http: httpx.AsyncClient,
                                                                                 dev_worker: Client) -> None:
    org = make_org(drivers=[{"matricule": "KM1", "nom": "Martin", "prenom": "Paul", "email": "paul@x.example",
                             "vehicle": True}])
    driver_id = org.driver_ids[0]
    with session_scope() as session:
        vehicle = session.scalars(select(Vehicle).where(Vehicle.driver_id == driver_id)).one()
        # A Compteurs workflow is waiting for this driver's reading (its read model, as a launch writes it).
        session.add(FollowUp(organisation_id=org.id, workflow_id=f"records-test-{vehicle.id}", driver_id=driver_id,
                             definition_name="WF-Relevé KM", family="compteurs", status="en_cours"))
    await login(http, org.manager_email)
    record = await http.get(f"/materiels/{vehicle.id}")
    assert "Aucun relevé saisi dans l'Espace Conducteur." in section(record, "releves")
    assert "Relevé du fichier des matériels importé." in seen(record)  # 12 000 km from the vehicles' file

    link = driver_space_url(get_settings(), driver_id)
    earlier = (today_paris() - timedelta(days=3)).strftime("%d/%m/%Y")
    async with httpx.AsyncClient(timeout=30) as driver_browser:
        first = await driver_browser.post(f"{link}/releve/{vehicle.id}", data={"km": "15 200", "releve_le": earlier})
        assert first.status_code == 200 and "15200 km" in text(first)
        too_low = await driver_browser.post(f"{link}/releve/{vehicle.id}", data={"km": "15000"})
        assert too_low.status_code == 422 and "inférieur au dernier relevé" in text(too_low)
        second = await driver_browser.post(f"{link}/releve/{vehicle.id}", data={"km": "16750"})
        assert second.status_code == 200
    with session_scope() as session:
        readings = list(session.scalars(select(OdometerReading).where(OdometerReading.vehicle_id == vehicle.id)
                                        .order_by(OdometerReading.id)))
        assert [(r.km, r.workflow_name) for r in readings] == [(15200, "WF-Relevé KM"), (16750, None)]
        entered = [paris(r.created_at) for r in readings]

    record = await http.get(f"/materiels/{vehicle.id}")
    shown = seen(record)
    assert "Kilométrage 16 750 km" in shown and f"Date du relevé {today_paris().strftime('%d/%m/%Y')}" in shown
    assert f"Saisi par Paul Martin (KM1) dans l'Espace Conducteur le {entered[1]}." in shown
    history = section(record, "releves")
    assert history.index("16 750 km") < history.index("15 200 km")  # the latest first
    assert (f"{today_paris().strftime('%d/%m/%Y')} 16 750 km Paul Martin (KM1) {entered[1]} -") in history
    assert f"{earlier} 15 200 km Paul Martin (KM1) {entered[0]} WF-Relevé KM" in history
    assert f'href="/utilisateurs/{driver_id}"' in record.text
    assert "16 750 km" in seen(await http.get(f"/utilisateurs/{driver_id}"))  # the driver's record too

    stranger = make_org(count=1)
    await http.post("/logout", data={"csrf_token": csrf_from(record.text)})
    await login(http, stranger.manager_email)
    assert (await http.get(f"/materiels/{vehicle.id}")).status_code == 404
    assert (await http.get(f"/utilisateurs/{driver_id}")).status_code == 404


async def test_the_demo_shows_fines_with_their_payment_and_what_drivers_entered(http: httpx.AsyncClient) -> None:
    from services.campaigns.models import Fine, Vehicle

    with session_scope() as session:
        paid = session.scalars(select(Fine).where(Fine.numero == "FPS-2026-000000000000124789")).one()
        vehicle_id, driver_id = session.execute(select(Vehicle.id, Vehicle.driver_id).join(
            Fine, Fine.vehicle_id == Vehicle.id).where(Fine.numero == "FPS-2026-000000000000123456")).one()
    await login(http, "gestionnaire@garonne.example")
    fines = text(await http.get(f"/materiels/{paid.vehicle_id}/amendes"))
    assert "FPS-2026-000000000000124789" in fines and "20/10/2026" in fines and "Justificatif" in fines
    proof = await http.get(f"/amendes/{paid.id}/justificatifs/" + re.search(
        rf"/amendes/{paid.id}/justificatifs/(\d+)", fines).group(1))  # type: ignore[union-attr]
    assert proof.status_code == 200 and proof.content.startswith(b"%PDF")
    vehicle = text(await http.get(f"/materiels/{vehicle_id}"))
    assert "Historique des relevés kilométriques" in vehicle and vehicle.count("WF-Relevé KM") >= 3
    driver = text(await http.get(f"/utilisateurs/{driver_id}"))
    assert "120831100456" in driver and "WF-Informations" in driver
