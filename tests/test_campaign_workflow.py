"""A Workflow campaign end to end on the dev server, over HTTP: one durable workflow per driver, a driver
answering through the link of the mail the SMTP sink received, managers validating and cancelling."""

import re

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from activities import driver_workflows
from core.db import session_scope
from core.models import OutboxMessage, WorkflowSignal
from services.campaigns.models import (
    Campaign,
    DistributionList,
    Driver,
    FollowUp,
    MailTemplate,
    Vehicle,
    WorkflowDefinition,
)
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_text
from tests.support.waiting import result_of, wait_until
from tests.support.web import csrf_from, login, text
from workflows.driver import DriverWorkflow


def _setup(org_id: int) -> tuple[int, int]:
    with session_scope() as session:
        template = MailTemplate(organisation_id=org_id, name="Relevé KM", subject="Relevé kilométrique",
                                body="Bonjour {{prenom}},\n\nVotre relevé : {{lien_connexion}}")
        dlist = DistributionList(organisation_id=org_id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        definition = WorkflowDefinition(
            organisation_id=org_id, name="WF-Relevé KM", family="compteurs", enabled=True,
            steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "", "template_id": template.id},
                   {"type": "attente", "name": "Attente 5j", "days": 5},
                   {"type": "mail", "name": "Relance", "to": "utilisateur", "cc": "", "template_id": template.id},
                   {"type": "attente", "name": "Attente 5j", "days": 5}])
        session.add(definition)
        session.flush()
        return dlist.id, definition.id


def _sent_first_mails(org_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(OutboxMessage.organisation_id == org_id,
                                                         OutboxMessage.status == "sent")) or 0


async def test_workflow_campaign_for_twenty_drivers(http: httpx.AsyncClient, dev_worker: Client,
                                                    sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    # The page prepared 3 recipients at a time (the next 3 while the previous ones' workflows start): chunks
    # holding a driver without e-mail, a last chunk shorter than the others.
    monkeypatch.setattr(driver_workflows, "CHUNK", 3)
    org = make_org(count=20, no_email_every=10)  # 18 with an e-mail, 2 without
    list_id, definition_id = _setup(org.id)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes/nouvelle")).text)
    created = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": "Relevé KM décembre",
                                                           "list_id": list_id, "kind": "workflow",
                                                           "workflow_definition_id": definition_id})
    assert created.status_code == 303, text(created)
    campaign_id = int(created.headers["location"].split("/")[2])
    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    started = await result_of(dev_worker, f"campaign-{campaign_id}")
    assert started == 18
    assert text(await http.get(f"/campagnes/{campaign_id}/envoyes")).count("Workflow lancé") == 18
    errors = text(await http.get(f"/campagnes/{campaign_id}/erreurs"))
    assert errors.count("Adresse mail manquante dans les infos du conducteur") == 2

    await wait_until(lambda: _sent_first_mails(org.id) == 18, what="the 18 first mails")
    mails = [m for m in sink.messages if org.slug in str(m["To"])]
    assert len(mails) == 18 and all(m["Subject"] == "Relevé kilométrique" for m in mails)

    # One driver answers through the link of the mail actually received.
    mail = mails[0]
    link = re.search(r"(http://\S+/espace-conducteur/\S+)", body_text(mail))
    assert link
    with session_scope() as session:
        driver = session.scalars(select(Driver).where(Driver.email == str(mail["To"]))).one()
        vehicle = session.scalars(select(Vehicle).where(Vehicle.driver_id == driver.id)).one()
    async with httpx.AsyncClient(timeout=30) as anonymous:
        space = await anonymous.get(link.group(1))
        assert space.status_code == 200 and "Relevé demandé" in text(space)
        too_low = await anonymous.post(f"{link.group(1)}/releve/{vehicle.id}", data={"km": "100"})
        assert too_low.status_code == 422 and "inférieur au dernier relevé" in text(too_low)
        done = await anonymous.post(f"{link.group(1)}/releve/{vehicle.id}",
                                    data={"km": str((vehicle.dernier_releve_km or 0) + 1500)})
        assert done.status_code == 200 and "est enregistré" in text(done)
    workflow_id = f"campaign-{campaign_id}-driver-{driver.id}"
    assert await dev_worker.get_workflow_handle_for(DriverWorkflow.run, workflow_id).result() == "valide"

    suivi = text(await http.get("/workflows-utilisateurs?workflow=WF-Relevé+KM"))
    assert suivi.count("En cours") - suivi.count('value="en_cours"') == 17
    row = re.search(rf'data-workflow-id="{workflow_id}".*?</tr>', suivi, re.S)
    assert row and "Validé" in row.group(0) and "✓" not in row.group(0)

    # A manager validates one and cancels another from the suivi page; a closed one refuses.
    with session_scope() as session:
        others = session.scalars(select(FollowUp).where(FollowUp.campaign_id == campaign_id,
                                                        FollowUp.status == "en_cours").order_by(FollowUp.id)).all()
    page = await http.get("/workflows-utilisateurs")
    token = csrf_from(page.text)
    validated = await http.post(f"/workflows-utilisateurs/{others[0].id}/valider", data={"csrf_token": token})
    assert "est validé" in text(await http.get(validated.headers["location"]))
    cancelled = await http.post(f"/workflows-utilisateurs/{others[1].id}/annuler", data={"csrf_token": token})
    assert "est annulé" in text(await http.get(cancelled.headers["location"]))
    refused = await http.post(f"/workflows-utilisateurs/{others[1].id}/valider", data={"csrf_token": token})
    assert "déjà clôturé (Annulé) : action refusée" in text(await http.get(refused.headers["location"]))
    with session_scope() as session:
        statuses = {r.id: r.status for r in session.scalars(select(FollowUp).where(FollowUp.id.in_(
            [others[0].id, others[1].id])))}
    assert statuses == {others[0].id: "valide", others[1].id: "annule"}
    for followup in others[:2]:  # the workflows follow what the read model says (through the relay)
        assert await result_of(dev_worker, followup.workflow_id) == statuses[followup.id]


async def _create(http: httpx.AsyncClient, list_id: int, definition_id: int, name: str) -> tuple[int, str]:
    token = csrf_from((await http.get("/campagnes/nouvelle")).text)
    created = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": name, "list_id": list_id,
                                                           "kind": "workflow", "workflow_definition_id": definition_id})
    assert created.status_code == 303, text(created)
    return int(created.headers["location"].split("/")[2]), token


async def test_a_workflow_deactivated_after_the_campaign_was_saved_refuses_the_launch(
        http: httpx.AsyncClient, dev_worker: Client) -> None:
    org = make_org(count=3)
    list_id, definition_id = _setup(org.id)
    await login(http, org.manager_email)
    campaign_id, token = await _create(http, list_id, definition_id, "Relevé KM janvier")
    with session_scope() as session:
        session.get(WorkflowDefinition, definition_id).enabled = False  # type: ignore[union-attr]
    launched = await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    page = text(await http.get(launched.headers["location"]))
    assert "Le workflow « WF-Relevé KM » de cette campagne n'est plus activé : lancement refusé." in page
    assert "EN ATTENTE" in page
    with session_scope() as session:
        assert session.get(Campaign, campaign_id).status == "pending"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).where(WorkflowSignal.workflow_id == f"campaign-{campaign_id}")) == 0


async def test_first_mail_to_the_manager_and_a_refused_first_mail(http: httpx.AsyncClient, dev_worker: Client,
                                                                  sink: SmtpSink) -> None:
    """A first step sent to @responsable needs the manager's address, not the driver's; a first mail the server
    refuses (5xx) puts the driver in the error list instead of "Workflow lancé"."""
    org = make_org(drivers=[
        {"matricule": "R1", "nom": "Sans", "prenom": "Mail", "email": None, "responsable_email": "chef1@r.example"},
        {"matricule": "R2", "nom": "Sans", "prenom": "Chef", "email": "r2@r.example", "responsable_email": None},
        {"matricule": "R3", "nom": "Refusé", "prenom": "Serveur", "email": "r3@r.example",
         "responsable_email": "chef3@r.example"},
    ])
    list_id, definition_id = _setup(org.id)
    with session_scope() as session:
        definition = session.get(WorkflowDefinition, definition_id)
        assert definition is not None
        definition.steps = [{**definition.steps[0], "to": "responsable"}, *definition.steps[1:]]
    await login(http, org.manager_email)
    campaign_id, token = await _create(http, list_id, definition_id, "Relevé KM chefs")
    sink.scripted_replies.append("550 5.1.1 Boîte inconnue")  # the first DATA the sink sees: one of the two mails
    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": token})
    assert await result_of(dev_worker, f"campaign-{campaign_id}") == 2  # R1 and R3 (R2's manager has no address)
    sent = text(await http.get(f"/campagnes/{campaign_id}/envoyes"))
    errors = text(await http.get(f"/campagnes/{campaign_id}/erreurs"))
    assert sent.count("Workflow lancé") == 1
    assert "Adresse mail du responsable manquante dans les infos du conducteur" in errors
    assert "Refusé par le serveur de messagerie : 550 5.1.1 Boîte inconnue" in errors
    [accepted] = [m for m in sink.messages if str(m["To"]).endswith("r.example")]
    assert str(accepted["To"]) in {"chef1@r.example", "chef3@r.example"}
