"""E-mail campaigns end to end on the dev server: PostgreSQL, Temporal, the SMTP sink, over HTTP."""

import io
import re

import httpx
import openpyxl
from temporalio.client import Client

from core.db import session_scope
from services.campaigns.models import Campaign, Driver
from tests.support.factories import TestOrg, make_org
from tests.support.smtp import SmtpSink, body_html, body_text
from tests.support.waiting import result_of
from tests.support.web import csrf_from, login, text

BODY = "Bonjour {{prenom}} {{nom}},\n\nVotre véhicule : {{vehicule_actuel}}.\n\n{{lien_connexion}}\n\nMerci."


async def _create_campaign(http: httpx.AsyncClient, org: TestOrg, name: str) -> int:
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes/nouvelle")).text)
    listed = await http.post("/listes/nouvelle", data={"csrf_token": token, "name": f"Tous {name}"})
    template = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": f"Modèle {name}",
                                                         "subject": "Relevé kilométrique de {{prenom}}", "body": BODY})
    list_id = int(listed.headers["location"].split("/")[2])
    template_id = int(template.headers["location"].split("/")[2])
    created = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": name, "list_id": list_id,
                                                           "kind": "email", "template_id": template_id})
    assert created.status_code == 303, text(created)
    return int(created.headers["location"].split("/")[2])


async def test_campaign_of_fifty_drivers_sends_once_and_lists_successes_and_errors(
        http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink) -> None:
    org = make_org(count=50, no_email_every=10)  # 5 drivers without e-mail
    campaign_id = await _create_campaign(http, org, "Relevé KM novembre")
    page = await http.get(f"/campagnes/{campaign_id}")
    assert "EN ATTENTE" in text(page) and "Lancer la campagne" in text(page)
    token = csrf_from(page.text)
    first = await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    second = await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})  # double click
    assert "Lancement de la campagne : « Relevé KM novembre » réussi" in text(await http.get(first.headers["location"]))
    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})  # a later relaunch
    assert second.status_code == 303
    total = await result_of(dev_worker, f"campaign-{campaign_id}")
    assert total == 50

    assert len(sink.messages) == 45
    assert len({m["To"] for m in sink.messages}) == 45
    with session_scope() as session:
        drivers = {d.email: d for d in session.query(Driver).filter(Driver.organisation_id == org.id) if d.email}
    for mail in sink.messages:
        driver = drivers[str(mail["To"])]
        assert mail["Subject"] == f"Relevé kilométrique de {driver.prenom}"
        assert f"Bonjour {driver.prenom} {driver.nom}," in body_text(mail)
        assert "Votre véhicule : PEUGEOT 308 AB-" in body_text(mail)
        assert 'Accéder à mon Espace Conducteur</a>' in body_html(mail)
    # The driver's link leads to their own space.
    link = re.search(r"(http://\S+/espace-conducteur/\S+)", body_text(sink.messages[0]))
    assert link
    space = await http.get(link.group(1))
    driver = drivers[str(sink.messages[0]["To"])]
    assert space.status_code == 200 and f"Bonjour {driver.prenom} {driver.nom}" in text(space)

    progress = text(await http.get(f"/campagnes/{campaign_id}/progression"))
    assert "ENVOYE" in progress and "100 %" in progress and "45 envoyé(s), 5 en erreur, sur 50" in progress
    listing = text(await http.get("/campagnes"))
    assert "Relevé KM novembre" in listing and "45 envoyé(s)" in listing and "5 en erreur" in listing
    sent = text(await http.get(f"/campagnes/{campaign_id}/envoyes"))
    assert sent.count("Mail envoyé à l'adresse conducteur") == 45
    errors = text(await http.get(f"/campagnes/{campaign_id}/erreurs"))
    assert errors.count("Adresse mail manquante dans les infos du conducteur") == 5 and "Mail manquant" in errors

    export = await http.get(f"/campagnes/{campaign_id}/envoyes.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(export.content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Nom Campagne", "Matricule", "Nom", "Prénom", "Email", "Statut", "Message")
    assert len(rows) == 46 and all(r[5] == "Envoyé" for r in rows[1:])
    error_rows = list(openpyxl.load_workbook(io.BytesIO((await http.get(
        f"/campagnes/{campaign_id}/erreurs.xlsx")).content), read_only=True).active.iter_rows(values_only=True))
    assert [r[5] for r in error_rows[1:]] == ["Mail manquant"] * 5

    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "sent" and campaign.total == 50
    edit = await http.get(f"/campagnes/{campaign_id}/modifier")
    assert "Une campagne lancée ne peut plus être modifiée." in text(await http.get(edit.headers["location"]))


async def test_a_refusing_smtp_server_puts_its_reply_in_the_error_list(
        http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink) -> None:
    org = make_org(count=3)
    campaign_id = await _create_campaign(http, org, "Refus SMTP")
    sink.scripted_replies.append("550 5.1.1 Destinataire inconnu")
    token = csrf_from((await http.get(f"/campagnes/{campaign_id}")).text)
    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    await result_of(dev_worker, f"campaign-{campaign_id}")
    assert len(sink.messages) == 2
    errors = text(await http.get(f"/campagnes/{campaign_id}/erreurs"))
    assert "Erreur d'envoi" in errors and "Refusé par le serveur de messagerie : 550" in errors
    assert "Destinataire inconnu" in errors
