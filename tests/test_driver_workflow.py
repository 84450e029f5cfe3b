"""The driver workflow on the time-skipping server: every ending, the mails on the right simulated days,
manager actions refused once the workflow has ended, fine follow-ups."""

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
from core.models import Organisation
from core.settings import get_settings
from services.campaigns.models import Driver, Fine, FollowUp, MailTemplate, Vehicle, WorkflowDefinition
from services.campaigns.service import driverworkflows, fines
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_text
from workflows.driver import DriverWorkflow, DriverWorkflowInput, StepSnapshot

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
                                                   time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    client, queue, mail_queue = time_worker
    driver = _driver()
    handle = await _start(client, mail_queue, queue, driver)
    workflow_id = handle.id
    await time_env.sleep(timedelta(days=2))
    with session_scope() as session:
        ids = driverworkflows.running_workflow_ids(session, driver_id=driver.id, family="compteurs")
    assert ids == [workflow_id]
    await driverworkflows.signal_driver_done(client, ids, "compteurs")
    assert await handle.result() == "valide"
    assert _followup(workflow_id).ended_reason == "Action réalisée par le conducteur"
    assert len(sink.messages) == 1  # no relance after the answer


@pytest.mark.parametrize(("action", "status", "reason"), [("valider", "valide", "Validé par Claire Dubois"),
                                                          ("annuler", "annule", "Annulé par Claire Dubois")])
async def test_manager_actions_and_a_second_action_refused(time_worker: tuple[Client, str, str],
                                                           time_env: WorkflowEnvironment, sink: SmtpSink,
                                                           action: str, status: str, reason: str) -> None:
    client, queue, mail_queue = time_worker
    handle = await _start(client, mail_queue, queue, _driver())
    workflow_id = handle.id
    await time_env.sleep(timedelta(days=1))
    answer = await driverworkflows.manager_action(client, workflow_id=workflow_id, action=action, by="Claire Dubois")
    assert answer == {"valide": "Validé", "annule": "Annulé"}[status]
    row = _followup(workflow_id)
    assert row.status == status and row.ended_reason == reason  # written before the update answered
    assert await handle.result() == status
    for again in ("valider", "annuler"):
        with pytest.raises(driverworkflows.ActionRefused):
            await driverworkflows.manager_action(client, workflow_id=workflow_id, action=again, by="Marc")
    assert _followup(workflow_id).status == status and _followup(workflow_id).ended_reason == reason


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
                    source="Ajout manuel", montant=Decimal("35.00"))
        session.add_all([definition, fine])
        session.flush()
        session.expunge_all()
        return fine, definition


async def test_a_paid_fine_closes_its_follow_up_validé(time_worker: tuple[Client, str, str],
                                                       time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    client, queue, mail_queue = time_worker
    driver = _driver()
    fine, definition = _contraventions(driver.organisation_id, driver)
    settings = get_settings().model_copy(update={"task_queue": queue, "mail_task_queue": mail_queue})
    with session_scope() as session:
        db_fine = session.get(Fine, fine.id)
        assert db_fine is not None and fines.followup_definition(session, db_fine) is not None
        definition = session.get(WorkflowDefinition, definition.id)  # type: ignore[assignment]
        steps = driverworkflows.snapshot_steps(session, definition)
        organisation = session.get(Organisation, driver.organisation_id)
        driverworkflows.add_read_model(session, organisation_id=driver.organisation_id, workflow_id=f"fine-{fine.id}",
                                       driver=driver, definition=definition, fine=db_fine)
        db_fine.status, db_fine.workflow_id = "en_cours", f"fine-{fine.id}"
        session.commit()
        await driverworkflows.start_fine_workflow(client, settings=settings, steps=steps, fine=db_fine, driver=driver,
                                                  definition=definition, organisation=organisation)  # type: ignore[arg-type]
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
        ids = driverworkflows.running_workflow_ids(session, driver_id=driver.id, family="contraventions",
                                                   fine_id=fine.id)
    await driverworkflows.signal_driver_done(client, ids, "contraventions")
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
