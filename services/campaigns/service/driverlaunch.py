"""What the Workflow-campaign launcher and the driver workflows do to the read model and the outbox: one page of
recipients into follow-ups, first mails and starts; the mail of a step; the step reached; the outcome of the
first mails ("Workflow lancé" or the error list).

The first Mail step of every driver goes out in bulk from the launcher's page (like an e-mail campaign): the
driver workflows then start at the step after it, so a launch costs the server little more than the starts.
"""

from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import outbox
from core.db import utcnow
from core.models import Organisation
from core.rendering import RenderError
from core.settings import Settings
from core.temporal import StartSpec
from services.campaigns.models import Campaign, CampaignRecipient, Driver, Fine, FollowUp, Vehicle, WorkflowDefinition
from services.campaigns.service.driverworkflows import driver_start, snapshot_steps
from services.campaigns.service.mailtemplates import current_vehicles, render_for_driver
from workflows.data.campaigns import LaunchPage, RecordBatch
from workflows.data.drivers import DriverMail, DriverWorkflowInput, StepChange, StepSnapshot

MISSING = {"utilisateur": "Adresse mail manquante dans les infos du conducteur",
           "responsable": "Adresse mail du responsable manquante dans les infos du conducteur"}


class StepUnrenderable(Exception):
    """A step's template cannot be rendered for this driver (the message says why, in French)."""


@dataclass
class Page:
    first_id: int
    last_id: int
    count: int
    starts: list[StartSpec]
    outbox_ids: list[int]


def _address(driver: Driver, to: str) -> str | None:
    return {"utilisateur": driver.email, "responsable": driver.responsable_email}.get(to) or None


def missing_address(step: StepSnapshot) -> tuple[str, str]:
    """The recipient's (status, message) when a Mail step's recipient has no address."""
    return "Mail manquant", MISSING.get(step.to, MISSING["utilisateur"])


def step_message(settings: Settings, workflow_id: str, index: int, step: StepSnapshot, driver: Driver,
                 vehicle: Vehicle | None, fine: Fine | None) -> outbox.NewMessage | None:
    """The mail of a Mail step (its outbox key is the workflow's and the step's), or None with no address."""
    to = _address(driver, step.to)
    if not to:
        return None
    cc = [a for a in [_address(driver, step.cc) if step.cc else None] if a and a != to]
    try:
        rendered = render_for_driver(step.subject, step.body, driver=driver, vehicle=vehicle, settings=settings,
                                     fine=fine)
    except RenderError as exc:
        raise StepUnrenderable(str(exc)) from exc
    return outbox.NewMessage(f"{workflow_id}-step-{index}", [to], rendered.subject, rendered.text, rendered.document(),
                              cc)


def prepare_page(session: Session, settings: Settings, inp: LaunchPage) -> Page | None:
    """The page's recipients → follow-up rows, their first mails in the outbox, and their workflows' starts.
    A recipient whose first mail has nobody to go to is put in the error list, and no workflow starts for him."""
    campaign = session.get(Campaign, inp.campaign_id)
    assert campaign is not None and campaign.workflow_definition_id is not None
    definition = session.get(WorkflowDefinition, campaign.workflow_definition_id)
    organisation = session.get(Organisation, campaign.organisation_id)
    assert definition is not None and organisation is not None
    rows = session.execute(
        select(CampaignRecipient, Driver).join(Driver, Driver.id == CampaignRecipient.driver_id)
        .where(CampaignRecipient.campaign_id == inp.campaign_id, CampaignRecipient.id > inp.after_id)
        .order_by(CampaignRecipient.id).limit(inp.limit)
    ).all()
    if not rows:
        return None
    steps = snapshot_steps(session, definition)  # one snapshot for the whole campaign (checked at launch)
    first = 1 if steps and steps[0].kind == "mail" else 0
    vehicles = current_vehicles(session, [d.id for _, d in rows])
    starts, read_models, messages = [], [], []
    for recipient, driver in rows:
        if recipient.state == "error":
            continue
        workflow_id = f"campaign-{campaign.id}-driver-{driver.id}"
        vehicle = vehicles.get(driver.id)
        if first:
            try:
                message = step_message(settings, workflow_id, 0, steps[0], driver, vehicle, None)
            except StepUnrenderable as exc:
                recipient.state, recipient.status, recipient.message = "error", "Erreur de modèle", str(exc)[:500]
                continue
            if message is None:
                recipient.state, (recipient.status, recipient.message) = "error", missing_address(steps[0])
                continue
            messages.append(message)
        waiting = steps[first] if first < len(steps) else None
        following = steps[first + 1] if first + 1 < len(steps) else None
        read_models.append(dict(organisation_id=campaign.organisation_id, workflow_id=workflow_id,
                                campaign_id=campaign.id, driver_id=driver.id, definition_name=definition.name,
                                family=definition.family, status="en_cours", started_at=utcnow(),
                                step_label=waiting.label if waiting else None, step_started_at=utcnow(),
                                next_step_label=following.label if following else None))
        inp_ = DriverWorkflowInput(workflow_id, driver.id, definition.family, steps, inp.mail_task_queue,
                                   start_index=first)
        starts.append(driver_start(inp_, task_queue=inp.task_queue, organisation=organisation, driver=driver,
                                   definition_name=definition.name, campaign_id=campaign.id,
                                   immatriculation=vehicle.immatriculation if vehicle else None))
    if read_models:
        session.execute(insert(FollowUp).on_conflict_do_nothing(index_elements=["workflow_id"]), read_models)
    ids = outbox.enqueue_many(session, settings=settings, organisation_id=campaign.organisation_id,
                              messages=messages)
    if not first:  # nothing to send first: launched as soon as started
        session.execute(update(CampaignRecipient)
                        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending",
                               CampaignRecipient.id.between(rows[0][0].id, rows[-1][0].id))
                        .values(state="sent", status="Workflow lancé", message="", updated_at=utcnow()))
    return Page(rows[0][0].id, rows[-1][0].id, len(rows), starts, list(ids.values()))


def record_launched_page(session: Session, inp: RecordBatch) -> None:
    """Once a page's first mails are sent: "Workflow lancé" for those the server accepted, the error list (with
    the server's reply) for those it refused."""
    session.execute(text("""
        UPDATE campaigns.campaign_recipients r
           SET state = CASE o.status WHEN 'sent' THEN 'sent' ELSE 'error' END,
               status = CASE o.status WHEN 'sent' THEN 'Workflow lancé' ELSE 'Erreur d''envoi' END,
               message = CASE o.status WHEN 'sent' THEN ''
                         ELSE 'Refusé par le serveur de messagerie : ' || coalesce(o.last_reply, '') END,
               updated_at = now()
          FROM core.outbox o
         WHERE o.key = 'campaign-' || r.campaign_id || '-driver-' || r.driver_id || '-step-0'
           AND o.status IN ('sent', 'ko') AND r.state = 'pending'
           AND r.campaign_id = :campaign_id AND r.id BETWEEN :first_id AND :last_id
    """), {"campaign_id": inp.campaign_id, "first_id": inp.first_id, "last_id": inp.last_id})


def record_step(session: Session, change: StepChange) -> None:
    session.execute(update(FollowUp).where(FollowUp.workflow_id == change.workflow_id)
                    .values(step_label=change.label, step_started_at=utcnow(),
                            next_step_label=change.next_label or None))


def prepare_driver_mail(session: Session, settings: Settings, mail: DriverMail) -> int:
    """Render the step's mail into the outbox (once per workflow and step); 0 when it cannot be sent (nobody to
    write to, or a template that cannot be rendered for this driver), which the follow-up's row then says."""
    driver = session.get(Driver, mail.driver_id)
    if driver is None:
        raise LookupError(f"Conducteur {mail.driver_id} introuvable")
    vehicle = current_vehicles(session, [driver.id]).get(driver.id)
    fine = session.get(Fine, mail.fine_id) if mail.fine_id else None
    try:
        message = step_message(settings, mail.workflow_id, mail.index, mail.step, driver, vehicle, fine)
    except StepUnrenderable as exc:  # e.g. a field the driver's data cannot fill: say so, go on with the steps
        _note(session, mail, str(exc))
        return 0
    if message is None:
        _note(session, mail, missing_address(mail.step)[1])
        return 0
    return outbox.enqueue_many(session, settings=settings, organisation_id=driver.organisation_id,
                               messages=[message])[message.key]


def _note(session: Session, mail: DriverMail, why: str) -> None:
    session.execute(update(FollowUp).where(FollowUp.workflow_id == mail.workflow_id)
                    .values(step_note=f"« {mail.step.label} » non envoyé : {why}"[:300]))
