"""The driver workflow on the time-skipping server: every ending, the mails on the right simulated days,
manager actions refused once the workflow has ended, fine follow-ups. Answers and manager actions go the way the
services send them: recorded in the read model with a queued signal, delivered by the relay (`core.signals`)."""

from datetime import date, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from core.db import session_scope
from core.settings import Settings, get_settings
from core.signals import SignalRelay
from services.campaigns.models import Driver, Fine, FollowUp, MailTemplate, Vehicle, WorkflowDefinition
from services.campaigns.service import driverworkflows, fines
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_text, free_port
from workflows.data.drivers import DriverWorkflowInput, StepSnapshot
from workflows.driver import DriverWorkflow

STEPS = [
    StepSnapshot("mail", "Envoi mail", "utilisateur", "", "Relevé kilométrique",
                 "Bonjour {{prenom}}, {{lien_connexion}}"),
    StepSnapshot("attente", "Attente 5j", days=5),
    StepSnapshot("mail", "Relance", "utilisateur", "responsable", "Relance : relevé kilométrique",
                 "Bonjour {{prenom}}, relance. {{lien_connexion}}"),
    StepSnapshot("attente", "Attente 5j", days=5),
]


def _driver() -> Driver:
    email = f"lea-{uuid4().hex[:6]}@x.example"
    org = make_org(drivers=[{"matricule": "W1", "nom": "Durand", "prenom": "Léa", "email": email,
                             "responsable_email": "chef@x.example", "vehicle": True}])
    with session_scope() as session:
        driver = session.get(Driver, org.driver_ids[0])
        assert driver is not None
        session.expunge(driver)
        return driver


async def _start(client: Client, mail_queue: str, queue: str, driver: Driver,
                 family: str = "compteurs") -> WorkflowHandle[DriverWorkflow, str]:
    workflow_id = f"test-driver-{uuid4().hex[:8]}"
    with session_scope() as session:
        session.add(FollowUp(organisation_id=driver.organisation_id, workflow_id=workflow_id, driver_id=driver.id,
                             definition_name="WF-Relevé KM", family=family, status="en_cours"))
    return await client.start_workflow(DriverWorkflow.run, DriverWorkflowInput(workflow_id, driver.id, family, STEPS,
                                                                               mail_queue),
                                       id=workflow_id, task_queue=queue)


def _settings(time_worker: tuple[Client, str, str]) -> Settings:
    _client, queue, mail_queue = time_worker
    return get_settings().model_copy(update={"task_queue": queue, "mail_task_queue": mail_queue})


def _followup(workflow_id: str) -> FollowUp:
    with session_scope() as session:
        row = session.scalars(select(FollowUp).where(FollowUp.workflow_id == workflow_id)).one()
        session.expunge(row)
        return row


async def test_steps_run_out_terminé_with_the_relance_on_day_five(time_worker: tuple[Client, str, str],
                                                                  time_env: WorkflowEnvironment,
                                                                  sink: SmtpSink) -> None:
    client, queue, mail_queue = time_worker
    driver = _driver()
    handle = await _start(client, mail_queue, queue, driver)
    workflow_id = handle.id
    await time_env.sleep(timedelta(days=1))
    assert [m["Subject"] for m in sink.messages] == ["Relevé kilométrique"]
    assert _followup(workflow_id).step_label == "Attente 5j" and _followup(workflow_id).next_step_label == "Relance"
    await time_env.sleep(timedelta(days=3))
    assert len(sink.messages) == 1  # day 4: still waiting
    await time_env.sleep(timedelta(days=2))
    assert [m["Subject"] for m in sink.messages] == ["Relevé kilométrique", "Relance : relevé kilométrique"]
    relance = sink.messages[1]
    assert relance["To"] == driver.email and relance["Cc"] == "chef@x.example"
    assert body_text(relance).startswith(f"Bonjour {driver.prenom}, relance. http")
    assert await handle.result() == "termine"
    # Unsandboxed, so prove determinism: the recorded history replays without a mismatch.
    await Replayer(workflows=[DriverWorkflow], data_converter=pydantic_data_converter).replay_workflow(
        await handle.fetch_history())
    row = _followup(workflow_id)
    assert row.status == "termine" and row.ended_reason == "Étapes terminées sans action du conducteur"
    assert len(sink.messages) == 2


async def test_the_drivers_action_closes_it_validé(time_worker: tuple[Client, str, str],
                                                   time_env: WorkflowEnvironment, sink: SmtpSink,
                                                   time_relay: SignalRelay) -> None:
    client, queue, mail_queue = time_worker
    driver = _driver()
    handle = await _start(client, mail_queue, queue, driver)
    workflow_id = handle.id
    await time_env.sleep(timedelta(days=2))
    with session_scope() as session:
        ids = driverworkflows.driver_answered(session, _settings(time_worker), driver_id=driver.id, family="compteurs")
    assert ids == [workflow_id]
    assert _followup(workflow_id).status == "valide"  # what the suivi page shows, before Temporal knows
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # Temporal unreachable: nothing listens
    assert await SignalRelay(dead, get_settings(), task_queue=queue).deliver_pending() == 0
    assert await handle.query(DriverWorkflow.current_step) == "Attente 5j"  # still waiting, the answer kept
    assert await time_relay.deliver_pending() == 1  # Temporal is back
    assert await handle.result() == "valide"
    assert _followup(workflow_id).ended_reason == "Action réalisée par le conducteur"
    assert len(sink.messages) == 1  # no relance after the answer


@pytest.mark.parametrize(("action", "status", "reason"), [("valider", "valide", "Validé par Claire Dubois"),
                                                          ("annuler", "annule", "Annulé par Claire Dubois")])
async def test_manager_actions_and_a_second_action_refused(time_worker: tuple[Client, str, str],
                                                           time_env: WorkflowEnvironment, sink: SmtpSink,
                                                           time_relay: SignalRelay, action: str, status: str,
                                                           reason: str) -> None:
    client, queue, mail_queue = time_worker
    handle = await _start(client, mail_queue, queue, _driver())
    workflow_id = handle.id
    await time_env.sleep(timedelta(days=1))
    with session_scope() as session:
        answer = driverworkflows.manager_action(session, _settings(time_worker), followup=_followup(workflow_id),
                                                action=action, by="Claire Dubois")
    assert answer == {"valide": "Validé", "annule": "Annulé"}[status]
    row = _followup(workflow_id)
    assert row.status == status and row.ended_reason == reason  # recorded at once
    for again in ("valider", "annuler"):
        with session_scope() as session, pytest.raises(driverworkflows.ActionRefused, match="déjà clôturé"):
            driverworkflows.manager_action(session, _settings(time_worker), followup=row, action=again, by="Marc")
    assert await time_relay.deliver_pending() == 1  # one signal: the refused actions queued nothing
    assert await handle.result() == status
    assert _followup(workflow_id).status == status and _followup(workflow_id).ended_reason == reason
    assert len(sink.messages) == 1  # no relance after the closing


def _contraventions(org_id: int, driver: Driver) -> tuple[Fine, WorkflowDefinition]:
    with session_scope() as session:
        template = MailTemplate(organisation_id=org_id, name="FPS", subject="Amende {{numero_amende}}",
                                body="Amende {{numero_amende}} du {{date_amende}} : {{montant_amende}}.\n"
                                     "{{lien_connexion}}")
        session.add(template)
        session.flush()
        definition = WorkflowDefinition(organisation_id=org_id, name="WF-FPS", family="contraventions", enabled=True,
                                        steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "",
                                                "template_id": template.id},
                                               {"type": "attente", "name": "Attente 5j", "days": 5}])
        vehicle = session.scalars(select(Vehicle).where(Vehicle.driver_id == driver.id)).one()
        fine = Fine(organisation_id=org_id, numero=f"FPS-{uuid4().hex[:6]}", date_infraction=date(2026, 11, 2),
                    immatriculation=vehicle.immatriculation, vehicle_id=vehicle.id, driver_id=driver.id,
                    type_amende="FPS", source="Ajout manuel", montant=Decimal("35.00"))
        session.add_all([definition, fine])
        session.flush()
        session.expunge_all()
        return fine, definition


async def test_a_paid_fine_closes_its_follow_up_validé(time_worker: tuple[Client, str, str],
                                                       time_env: WorkflowEnvironment, sink: SmtpSink,
                                                       time_relay: SignalRelay) -> None:
    client, queue, mail_queue = time_worker
    driver = _driver()
    fine, definition = _contraventions(driver.organisation_id, driver)
    settings = _settings(time_worker)
    with session_scope() as session:
        db_fine = session.get(Fine, fine.id)
        assert db_fine is not None and fines.followup_definition(session, db_fine) is not None
        db_definition = session.get(WorkflowDefinition, definition.id)
        db_driver = session.get(Driver, driver.id)
        assert db_definition is not None and db_driver is not None
        driverworkflows.queue_fine_followup(session, settings, fine=db_fine, driver=db_driver,
                                            definition=db_definition)
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # Temporal unreachable when it is recorded
    assert await SignalRelay(dead, get_settings(), task_queue=queue).deliver_pending() == 0
    with session_scope() as session:
        assert session.get(Fine, fine.id).status == "en_cours"  # type: ignore[union-attr]
    assert await time_relay.deliver_pending() == 1  # back: the start goes through
    await time_env.sleep(timedelta(days=1))
    [mail] = sink.messages
    assert mail["Subject"] == f"Amende {fine.numero}"
    assert "35,00 €" in body_text(mail) and "02/11/2026" in body_text(mail)
    with session_scope() as session:
        db_fine = session.get(Fine, fine.id)
        assert db_fine is not None
        refused = fines.declare_payment(session, fine=db_fine, paid_on=date(2026, 11, 20), filename="preuve.exe",
                                        data=b"MZ\x90\x00 not a pdf")
        assert refused and "PDF, un JPEG ou un PNG" in refused
        assert fines.declare_payment(session, fine=db_fine, paid_on=date(2026, 11, 20), filename="preuve.pdf",
                                     data=b"%PDF-1.7\n...") is None
        assert driverworkflows.driver_answered(session, settings, driver_id=driver.id, family="contraventions",
                                               fine_id=fine.id) == [f"fine-{fine.id}"]
    assert await time_relay.deliver_pending() == 1
    assert await client.get_workflow_handle(f"fine-{fine.id}").result() == "valide"
    with session_scope() as session:
        db_fine = session.get(Fine, fine.id)
        assert db_fine is not None and db_fine.status == "valide" and db_fine.date_paiement == date(2026, 11, 20)
        assert fines.proofs_count(session, fine.id) == 1


def test_antai_fines_and_fines_without_an_activated_workflow_are_not_followed() -> None:
    driver = _driver()
    fine, definition = _contraventions(driver.organisation_id, driver)
    with session_scope() as session:
        db_fine = session.get(Fine, fine.id)
        assert db_fine is not None
        assert fines.followup_definition(session, db_fine) is not None
        db_fine.source = "Antai"
        assert fines.followup_definition(session, db_fine) is None  # the seed: never for ANTAI fines
        db_fine.source = "Ajout manuel"
        session.get(WorkflowDefinition, definition.id).enabled = False  # type: ignore[union-attr]
        assert fines.followup_definition(session, db_fine) is None


async def test_a_mail_step_with_nobody_to_write_to_is_noted_not_skipped_silently(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    client, queue, mail_queue = time_worker
    org = make_org(drivers=[{"matricule": "N1", "nom": "Sans", "prenom": "Adresse", "email": None}])
    workflow_id = f"test-driver-{uuid4().hex[:8]}"
    with session_scope() as session:
        session.add(FollowUp(organisation_id=org.id, workflow_id=workflow_id, driver_id=org.driver_ids[0],
                             definition_name="WF-Relevé KM", family="compteurs", status="en_cours"))
    steps = [StepSnapshot("attente", "Attente 1j", days=1), STEPS[2], StepSnapshot("attente", "Attente 5j", days=5)]
    handle = await client.start_workflow(DriverWorkflow.run, DriverWorkflowInput(
        workflow_id, org.driver_ids[0], "compteurs", steps, mail_queue), id=workflow_id, task_queue=queue)
    await time_env.sleep(timedelta(days=2))
    row = _followup(workflow_id)
    assert row.step_label == "Attente 5j"  # went on, and says what it could not do
    assert row.step_note == "« Relance » non envoyé : Adresse mail manquante dans les infos du conducteur"
    assert await handle.result() == "termine"
    assert not sink.messages
    assert _followup(workflow_id).step_note == row.step_note
