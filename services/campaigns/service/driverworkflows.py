"""Driver workflows: snapshot a definition, start one (fine follow-up), follow them up, close them.

A driver's answer and a manager's validation or cancellation are recorded in the read model first, under a row lock
(of two concurrent closings exactly one passes), with the `closed` signal that tells the workflow, in one
transaction (`core.signals`): the answer never waits for Temporal.
"""

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.orm import Session

from core.db import scoped, table, utcnow
from core.models import Organisation
from core.settings import Settings
from core.signals import queue_signal, queue_start
from core.temporal import StartSpec, start_spec
from services.campaigns.models import Driver, Fine, FollowUp, MailTemplate, WorkflowDefinition
from workflows.data.drivers import CLOSED, DRIVER_WORKFLOW, Closure, DriverWorkflowInput, StepSnapshot

STATUS_LABELS = {"en_cours": "En cours", "valide": "Validé", "annule": "Annulé", "termine": "Terminé"}
FAMILY_LABELS = {"compteurs": "Compteurs", "informations": "Informations", "contraventions": "Contraventions",
                 "autres": "Autres"}
MANAGER_ACTIONS = {"valider": ("valide", "Validé par {by}"), "annuler": ("annule", "Annulé par {by}")}
DRIVER_DONE = "Action réalisée par le conducteur"
STEPS_DONE = "Étapes terminées sans action du conducteur"


class ActionRefused(Exception):
    """A manager action the read model refuses (the workflow is already closed): the message is for the manager."""


class IncompleteDefinition(Exception):
    """A Mail step's template no longer exists: nothing can be launched with this definition."""


def snapshot_steps(session: Session, definition: WorkflowDefinition) -> list[StepSnapshot]:
    """The definition's steps with their templates' text, frozen for one run; raises IncompleteDefinition."""
    ids = [int(s["template_id"]) for s in definition.steps if s.get("type") == "mail" and s.get("template_id")]
    templates = {t.id: t for t in session.scalars(select(MailTemplate).where(MailTemplate.id.in_(ids)))}
    steps = []
    for step in definition.steps:
        if step.get("type") == "mail":
            template = templates.get(int(step.get("template_id") or 0))
            if template is None:
                raise IncompleteDefinition(f"Le workflow « {definition.name} » est incomplet : le modèle d'email de "
                                           f"l'étape « {step.get('name') or 'Envoi mail'} » n'existe plus.")
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


def driver_start(inp: DriverWorkflowInput, *, task_queue: str, organisation: Organisation, driver: Driver,
                 definition_name: str, campaign_id: int | None = None, immatriculation: str | None = None,
                 reference: str | None = None) -> StartSpec:
    """How every driver workflow starts (campaign launcher page, fine follow-up): search attributes and summary."""
    return start_spec(
        inp.workflow_id, DRIVER_WORKFLOW, inp, task_queue=task_queue,
        summary=f"{definition_name} — {driver.prenom} {driver.nom} ({driver.matricule})"
                + (f" — amende {reference}" if reference else ""),
        RelaisOrganisation=organisation.slug, RelaisDomain="campaigns",
        RelaisCampaign=str(campaign_id) if campaign_id else None, RelaisPerson=driver.matricule,
        RelaisVehicle=immatriculation, RelaisFamily=FAMILY_LABELS.get(inp.family, inp.family),
        RelaisDocument=reference, RelaisStatus=STATUS_LABELS["en_cours"])


def queue_fine_followup(session: Session, settings: Settings, *, fine: Fine, driver: Driver,
                        definition: WorkflowDefinition) -> None:
    """The fine's follow-up (`fine-<id>`): read model and start in the caller's transaction; raises
    IncompleteDefinition (nothing written) if a template of the definition is gone."""
    steps = snapshot_steps(session, definition)
    organisation = session.get(Organisation, fine.organisation_id)
    assert organisation is not None
    workflow_id = f"fine-{fine.id}"
    fine.status, fine.workflow_id = "en_cours", workflow_id
    add_read_model(session, organisation_id=fine.organisation_id, workflow_id=workflow_id, driver=driver,
                   definition=definition, fine=fine)
    inp = DriverWorkflowInput(workflow_id, driver.id, definition.family, steps, settings.mail_task_queue, fine.id)
    queue_start(session, organisation_id=fine.organisation_id, spec=driver_start(
        inp, task_queue=settings.task_queue, organisation=organisation, driver=driver,
        definition_name=definition.name, immatriculation=fine.immatriculation, reference=fine.numero))


def _close(session: Session, settings: Settings, where: list[ColumnElement[bool]], *, status: str,
           reason: str) -> list[str]:
    """Close the running follow-ups matching `where` (row locks: a concurrent closing waits, then finds them
    closed) and queue the signal that stops each workflow; returns their workflow ids."""
    followups = table(FollowUp)
    closed = session.execute(
        update(followups).where(followups.c.status == "en_cours", *where)
        .values(status=status, ended_at=utcnow(), ended_reason=reason[:300], step_label=None, next_step_label=None)
        .returning(followups.c.workflow_id, followups.c.organisation_id, followups.c.fine_id)).all()
    fine_ids = [row.fine_id for row in closed if row.fine_id]
    if fine_ids:
        session.execute(update(Fine).where(Fine.id.in_(fine_ids)).values(status=status))
    for row in closed:
        queue_signal(session, organisation_id=row.organisation_id, workflow_id=row.workflow_id, signal=CLOSED,
                     payload=Closure(status), task_queue=settings.task_queue)
    return [row.workflow_id for row in closed]


def driver_answered(session: Session, settings: Settings, *, driver_id: int, family: str,
                    fine_id: int | None = None) -> list[str]:
    """The driver did what was asked: every matching running follow-up closes as Validé, in the caller's
    transaction with his answer; returns the workflow ids told."""
    followups = table(FollowUp)
    where: list[ColumnElement[bool]] = [followups.c.driver_id == driver_id, followups.c.family == family]
    if fine_id is not None:
        where.append(followups.c.fine_id == fine_id)
    return _close(session, settings, where, status="valide", reason=DRIVER_DONE)


def manager_action(session: Session, settings: Settings, *, followup: FollowUp, action: str, by: str) -> str:
    """«Valider» or «Annuler» a running follow-up; raises ActionRefused (nothing changed) if it is closed already.
    Returns the new status label."""
    status, reason = MANAGER_ACTIONS[action]
    if not _close(session, settings, [table(FollowUp).c.id == followup.id], status=status,
                  reason=reason.format(by=by)):
        current = session.scalar(select(FollowUp.status).where(FollowUp.id == followup.id)) or "termine"
        raise ActionRefused(f"Ce workflow est déjà clôturé ({STATUS_LABELS[current]}) : action refusée.")
    return STATUS_LABELS[status]


def finish(session: Session, *, workflow_id: str, fine_id: int | None) -> tuple[str, str]:
    """The workflow's steps ran out: Terminé, unless an action closed it first. Returns (status, label)."""
    followups = table(FollowUp)
    session.execute(update(followups).where(followups.c.workflow_id == workflow_id, followups.c.status == "en_cours")
                    .values(status="termine", ended_at=utcnow(), ended_reason=STEPS_DONE, step_label=None,
                            next_step_label=None))
    if fine_id:
        session.execute(update(Fine).where(Fine.id == fine_id, Fine.status == "en_cours").values(status="termine"))
    status = session.scalar(select(FollowUp.status).where(FollowUp.workflow_id == workflow_id)) or "termine"
    return status, STATUS_LABELS[status]


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
