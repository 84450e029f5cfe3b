"""Activities of the driver workflows and of the Workflow-campaign launcher: thin adapters over
`services.campaigns.service.driverlaunch` and `driverworkflows`."""

import asyncio
import contextlib

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from core.db import session_scope
from core.settings import Settings
from core.temporal import StartSpec, start_workflow
from services.campaigns.service import driverlaunch, driverworkflows
from workflows.data.campaigns import LaunchedPage, LaunchPage, RecordBatch
from workflows.data.drivers import DriverMail, Ended, Ending, StepChange

STARTS_IN_FLIGHT = 50


class DriverWorkflowActivities:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings, self.client = settings, client

    @activity.defn(name="launch_driver_workflows")
    async def launch_driver_workflows(self, inp: LaunchPage) -> LaunchedPage:
        """Start the driver workflows of one page of recipients (ids are deterministic: a retry is harmless)."""
        page = await asyncio.to_thread(self._prepare_page, inp)
        if page is None:
            return LaunchedPage()
        activity.heartbeat(0)
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)
        done = 0

        async def start(spec: StartSpec) -> None:
            nonlocal done
            async with gate:
                with contextlib.suppress(WorkflowAlreadyStartedError):  # ran and closed already: stays closed
                    await start_workflow(self.client, spec)
                done += 1
                if done % 50 == 0:
                    activity.heartbeat(done)

        await asyncio.gather(*(start(s) for s in page.starts))
        return LaunchedPage(page.first_id, page.last_id, page.count, len(page.starts), page.outbox_ids)

    def _prepare_page(self, inp: LaunchPage) -> driverlaunch.Page | None:
        with session_scope() as session:
            return driverlaunch.prepare_page(session, self.settings, inp)

    @activity.defn(name="record_launched_page")
    def record_launched_page(self, inp: RecordBatch) -> None:
        with session_scope() as session:
            driverlaunch.record_launched_page(session, inp)

    @activity.defn(name="record_driver_step")
    def record_driver_step(self, change: StepChange) -> None:
        with session_scope() as session:
            driverlaunch.record_step(session, change)

    @activity.defn(name="prepare_driver_mail")
    def prepare_driver_mail(self, mail: DriverMail) -> int:
        """Render the step's mail into the outbox (once per workflow and step); 0 when nobody can receive it."""
        try:
            with session_scope() as session:
                return driverlaunch.prepare_driver_mail(session, self.settings, mail)
        except LookupError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc

    @activity.defn(name="finish_driver_workflow")
    def finish_driver_workflow(self, ending: Ending) -> Ended:
        with session_scope() as session:
            return Ended(*driverworkflows.finish(session, workflow_id=ending.workflow_id, fine_id=ending.fine_id))
