"""Activities of the driver workflows and of the Workflow-campaign launcher."""

import asyncio
import contextlib

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from core import outbox
from core.db import session_scope, utcnow
from core.models import Organisation
from core.rendering import RenderError
from core.settings import Settings
from services.campaigns.models import (
    Campaign,
    CampaignRecipient,
    Driver,
    Fine,
    FollowUp,
    Vehicle,
    WorkflowDefinition,
)
from services.campaigns.service.driverworkflows import snapshot_steps, start_options
from services.campaigns.service.mailtemplates import current_vehicles, render_for_driver
from workflows.campaign_workflow import LaunchedPage, LaunchPage
from workflows.driver import DriverMail, DriverWorkflow, DriverWorkflowInput, Ending, StepChange, StepSnapshot

MISSING_EMAIL = ("Mail manquant", "Adresse mail manquante dans les infos du conducteur")
STARTS_IN_FLIGHT = 50
Start = tuple[DriverWorkflowInput, dict[str, object]]  # input and start options of one workflow


class DriverWorkflowActivities:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings, self.client = settings, client

    @activity.defn(name="launch_driver_workflows")
    async def launch_driver_workflows(self, inp: LaunchPage) -> LaunchedPage:
        """Start the driver workflows of one page of recipients (ids are deterministic: a retry is harmless)."""
        page = await asyncio.to_thread(self._prepare_page, inp)
        if page is None:
            return LaunchedPage()
        last_id, count, starts, outbox_ids = page
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)
        done = 0

        async def start(args: Start) -> None:
            nonlocal done
            async with gate:
                with contextlib.suppress(WorkflowAlreadyStartedError):  # started by an earlier attempt of this page
                    await self.client.start_workflow(DriverWorkflow.run, args[0], **args[1])  # type: ignore[call-overload]
                done += 1
                if done % 50 == 0:
                    activity.heartbeat(done)

        await asyncio.gather(*(start(s) for s in starts))
        await asyncio.to_thread(self._mark_launched, inp.campaign_id, [s[0].workflow_id for s in starts])
        return LaunchedPage(last_id, count, len(starts), outbox_ids)

    def _prepare_page(self, inp: LaunchPage) -> tuple[int, int, list[Start], list[int]] | None:
        """Recipients of the page → read-model rows, their first mails in the outbox, and the workflow starts.

        The first Mail step of every driver goes out in bulk from here (like an e-mail campaign): the driver
        workflows then start at the step after it, so a launch costs the server little more than the starts.
        """
        with session_scope() as session:
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
            steps = snapshot_steps(session, definition)  # one snapshot for the whole campaign
            first = 1 if steps and steps[0].kind == "mail" else 0
            vehicles = current_vehicles(session, [d.id for _, d in rows])
            starts, read_models, messages = [], [], []
            for recipient, driver in rows:
                if recipient.state == "error":
                    continue
                if not driver.email:
                    recipient.state, (recipient.status, recipient.message) = "error", MISSING_EMAIL
                    continue
                workflow_id = f"campaign-{campaign.id}-driver-{driver.id}"
                vehicle = vehicles.get(driver.id)
                if first and (message := self._step_message(workflow_id, 0, steps[0], driver, vehicle, None)):
                    messages.append(message)
                waiting = steps[first] if first < len(steps) else None
                following = steps[first + 1] if first + 1 < len(steps) else None
                read_models.append(dict(organisation_id=campaign.organisation_id, workflow_id=workflow_id,
                                        campaign_id=campaign.id, driver_id=driver.id, definition_name=definition.name,
                                        family=definition.family, status="en_cours", started_at=utcnow(),
                                        step_label=waiting.label if waiting else None, step_started_at=utcnow(),
                                        next_step_label=following.label if following else None))
                starts.append((
                    DriverWorkflowInput(workflow_id, driver.id, definition.family, steps, inp.mail_task_queue,
                                        start_index=first),
                    start_options(settings=self.settings, workflow_id=workflow_id, organisation=organisation,
                                  driver=driver, family=definition.family, definition_name=definition.name,
                                  campaign_id=campaign.id, immatriculation=vehicle.immatriculation if vehicle else None)
                    | {"task_queue": inp.task_queue},
                ))
            if read_models:
                session.execute(insert(FollowUp).on_conflict_do_nothing(index_elements=["workflow_id"]),
                                read_models)
            ids = outbox.enqueue_many(session, settings=self.settings, organisation_id=campaign.organisation_id,
                                      messages=messages)
            return rows[-1][0].id, len(rows), starts, list(ids.values())

    def _mark_launched(self, campaign_id: int, workflow_ids: list[str]) -> None:
        driver_ids = [int(w.rsplit("-", 1)[1]) for w in workflow_ids]
        with session_scope() as session:
            session.execute(update(CampaignRecipient)
                            .where(CampaignRecipient.campaign_id == campaign_id,
                                   CampaignRecipient.driver_id.in_(driver_ids), CampaignRecipient.state == "pending")
                            .values(state="sent", status="Workflow lancé", message="", updated_at=utcnow()))

    @activity.defn(name="record_driver_step")
    def record_driver_step(self, change: StepChange) -> None:
        with session_scope() as session:
            session.execute(update(FollowUp).where(FollowUp.workflow_id == change.workflow_id)
                            .values(step_label=change.label, step_started_at=utcnow(),
                                    next_step_label=change.next_label or None))

    @activity.defn(name="prepare_driver_mail")
    def prepare_driver_mail(self, mail: DriverMail) -> int:
        """Render the step's mail into the outbox (once per workflow and step); 0 when nobody can receive it."""
        with session_scope() as session:
            driver = session.get(Driver, mail.driver_id)
            if driver is None:
                raise ApplicationError(f"Conducteur {mail.driver_id} introuvable", non_retryable=True)
            vehicle = session.scalars(select(Vehicle).where(Vehicle.driver_id == driver.id)
                                      .order_by(Vehicle.updated_at.desc())).first()
            fine = session.get(Fine, mail.fine_id) if mail.fine_id else None
            message = self._step_message(mail.workflow_id, mail.index, mail.step, driver, vehicle, fine)
            if message is None:
                activity.logger.warning("Pas d'adresse pour %s (%s)", mail.step.to, mail.workflow_id)
                return 0
            return outbox.enqueue_many(session, settings=self.settings, organisation_id=driver.organisation_id,
                                       messages=[message])[message.key]

    def _step_message(self, workflow_id: str, index: int, step: StepSnapshot, driver: Driver,
                      vehicle: Vehicle | None, fine: Fine | None) -> outbox.NewMessage | None:
        """The mail of a Mail step (its outbox key is the workflow's and the step's), or None with no address."""
        addresses = {"utilisateur": driver.email, "responsable": driver.responsable_email}
        to = addresses.get(step.to)
        if not to:
            return None
        cc = [a for a in [addresses.get(step.cc)] if a and a != to]
        try:
            rendered = render_for_driver(step.subject, step.body, driver=driver, vehicle=vehicle,
                                         settings=self.settings, fine=fine)
        except RenderError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc
        return outbox.NewMessage(f"{workflow_id}-step-{index}", [to], rendered.subject, rendered.text, rendered.html,
                                 cc)

    @activity.defn(name="finish_driver_workflow")
    def finish_driver_workflow(self, ending: Ending) -> None:
        with session_scope() as session:
            session.execute(update(FollowUp).where(FollowUp.workflow_id == ending.workflow_id)
                            .values(status=ending.status, ended_at=utcnow(), ended_reason=ending.reason,
                                    step_label=None, next_step_label=None))
            if ending.fine_id:
                session.execute(update(Fine).where(Fine.id == ending.fine_id).values(status=ending.status))
