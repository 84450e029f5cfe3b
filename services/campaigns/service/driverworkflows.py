"""Driver workflows: snapshot a definition, start one (fine follow-up), follow them up, steer them."""

import contextlib
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from core.db import scoped, utcnow
from core.models import Organisation
from core.settings import Settings
from core.temporal import search_attributes
from services.campaigns.models import Driver, Fine, FollowUp, MailTemplate, WorkflowDefinition
from workflows.driver import (
    STATUS_LABELS,
    DriverAction,
    DriverWorkflow,
    DriverWorkflowInput,
    ManagerAction,
    StepSnapshot,
)

FAMILY_LABELS = {"compteurs": "Compteurs", "informations": "Informations", "contraventions": "Contraventions",
                 "autres": "Autres"}
UPDATE_TIMEOUT_SECONDS = 15


class ActionRefused(Exception):
    """A manager action the workflow refused (already closed...): the message is for the manager."""


def snapshot_steps(session: Session, definition: WorkflowDefinition) -> list[StepSnapshot]:
    """The definition's steps with their templates' text, frozen for one run."""
    ids = [s["template_id"] for s in definition.steps if s.get("type") == "mail" and s.get("template_id")]
    templates = {t.id: t for t in session.scalars(select(MailTemplate).where(MailTemplate.id.in_(ids)))}
    steps = []
    for step in definition.steps:
        if step.get("type") == "mail":
            template = templates[int(step["template_id"])]
            steps.append(StepSnapshot("mail", step.get("name") or "Envoi mail", step.get("to") or "utilisateur",
                                      step.get("cc") or "", template.subject, template.body))
        else:
            days = int(step["days"])
            steps.append(StepSnapshot("attente", step.get("name") or f"Attente {days}j", days=days))
    return steps


def add_read_model(session: Session, *, organisation_id: int, workflow_id: str, driver: Driver,
                   definition: WorkflowDefinition, campaign_id: int | None = None, fine: Fine | None = None) -> None:
    session.add(FollowUp(organisation_id=organisation_id, workflow_id=workflow_id, campaign_id=campaign_id,
                               fine_id=fine.id if fine else None, driver_id=driver.id,
                               definition_name=definition.name, family=definition.family,
                               reference=fine.numero if fine else None, status="en_cours", started_at=utcnow()))


def start_options(*, settings: Settings, workflow_id: str, organisation: Organisation, driver: Driver,
                  family: str, definition_name: str, campaign_id: int | None = None, immatriculation: str | None = None,
                  reference: str | None = None) -> dict[str, object]:
    """Id, queue, dedupe policies, search attributes and summary shared by every driver workflow start."""
    return dict(
        id=workflow_id, task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(
            RelaisOrganisation=organisation.slug, RelaisDomain="campaigns",
            RelaisCampaign=str(campaign_id) if campaign_id else None, RelaisPerson=driver.matricule,
            RelaisVehicle=immatriculation, RelaisFamily=FAMILY_LABELS.get(family, family), RelaisDocument=reference,
            RelaisStatus=STATUS_LABELS["en_cours"],
        ),
        static_summary=f"{definition_name} — {driver.prenom} {driver.nom} ({driver.matricule})"
                       + (f" — amende {reference}" if reference else ""),
    )


async def start_fine_workflow(client: Client, *, settings: Settings, steps: list[StepSnapshot], fine: Fine,
                              driver: Driver, definition: WorkflowDefinition, organisation: Organisation) -> None:
    workflow_id = f"fine-{fine.id}"
    await client.start_workflow(  # type: ignore[call-overload]
        DriverWorkflow.run,
        DriverWorkflowInput(workflow_id, driver.id, definition.family, steps, settings.mail_task_queue, fine.id),
        **start_options(settings=settings, workflow_id=workflow_id, organisation=organisation, driver=driver,
                        family=definition.family, definition_name=definition.name,
                        immatriculation=fine.immatriculation, reference=fine.numero),
    )


def followup_query(organisation_id: int, *, name: str = "", status: str = "") -> Select[FollowUp, Driver]:
    stmt = (select(FollowUp, Driver).join(Driver, Driver.id == FollowUp.driver_id)
            .where(FollowUp.organisation_id == organisation_id))
    if name:
        stmt = stmt.where(FollowUp.definition_name == name)
    if status in STATUS_LABELS:
        stmt = stmt.where(FollowUp.status == status)
    return stmt.order_by(FollowUp.started_at.desc(), FollowUp.id.desc())


def definition_names(session: Session, *, organisation_id: int) -> list[str]:
    stmt = (select(FollowUp.definition_name).where(FollowUp.organisation_id == organisation_id)
            .distinct().order_by(FollowUp.definition_name))
    return list(session.scalars(stmt))


def get_followup(session: Session, *, organisation_id: int, followup_id: int) -> FollowUp | None:
    return session.scalars(scoped(FollowUp, organisation_id).where(FollowUp.id == followup_id)).first()


async def manager_action(client: Client, *, workflow_id: str, action: str, by: str) -> str:
    """Validate or cancel through a Temporal update; a closed or closing workflow refuses, changing nothing."""
    handle = client.get_workflow_handle(workflow_id)
    update = DriverWorkflow.validate if action == "valider" else DriverWorkflow.cancel
    try:
        return str(await handle.execute_update(update, ManagerAction(by),  # type: ignore[arg-type]
                                               rpc_timeout=timedelta(seconds=UPDATE_TIMEOUT_SECONDS)))
    except WorkflowUpdateFailedError as exc:
        raise ActionRefused(str(exc.cause) if exc.cause else "Action refusée par le workflow.") from exc
    except RPCError as exc:  # NOT_FOUND: the workflow has already closed
        raise ActionRefused("Ce workflow est terminé : action refusée.") from exc


def running_workflow_ids(session: Session, *, driver_id: int, family: str, fine_id: int | None = None) -> list[str]:
    stmt = select(FollowUp.workflow_id).where(FollowUp.driver_id == driver_id,
                                                    FollowUp.family == family,
                                                    FollowUp.status == "en_cours")
    if fine_id is not None:
        stmt = stmt.where(FollowUp.fine_id == fine_id)
    return list(session.scalars(stmt))


async def signal_driver_done(client: Client, workflow_ids: list[str], what: str) -> None:
    """The driver did what was asked: every matching running workflow closes as Validé."""
    for workflow_id in workflow_ids:
        with contextlib.suppress(RPCError):  # closed meanwhile: nothing left to tell it
            await client.get_workflow_handle(workflow_id).signal(DriverWorkflow.driver_completed, DriverAction(what))
