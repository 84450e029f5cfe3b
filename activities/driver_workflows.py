"""Activities of the driver workflows and of the Workflow-campaign launcher: thin adapters over
`services.campaigns.service.driverlaunch` and `driverworkflows`."""

import asyncio
import contextlib
from dataclasses import replace

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
CHUNK = 100  # recipients prepared at a time, while the previous ones' workflows start


class DriverWorkflowActivities:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings, self.client = settings, client

    @activity.defn(name="launch_driver_workflows")
    async def launch_driver_workflows(self, inp: LaunchPage) -> LaunchedPage:
        """Start the driver workflows of one page of recipients (ids are deterministic: a retry is harmless).

        The page is prepared (read model, first mails, starts) `CHUNK` recipients at a time, in a thread, each chunk
        committed before its workflows start: chunk k+1 is prepared while chunk k's workflows start, so that the DB work
        no longer holds the starts up (it took 0.5-0.7 s per page of 500, before the first start). A retry prepares
        the page again from its start: each chunk is idempotent, as the whole page was."""
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)
        chunks: list[driverlaunch.Page] = []
        done = 0

        async def start(spec: StartSpec) -> None:
            nonlocal done
            async with gate:
                with contextlib.suppress(WorkflowAlreadyStartedError):  # ran and closed already: stays closed
                    await start_workflow(self.client, spec)
                done += 1
                if done % 50 == 0:
                    activity.heartbeat(done)

        try:
            async with asyncio.TaskGroup() as starting:
                after, left = inp.after_id, inp.limit
                while left > 0:
                    size = min(CHUNK, left)
                    chunk = await asyncio.to_thread(self._prepare_page, replace(inp, after_id=after, limit=size))
                    if chunk is None:
                        break
                    chunks.append(chunk)
                    activity.heartbeat(done)
                    for spec in chunk.starts:
                        starting.create_task(start(spec))
                    if chunk.count < size:
                        break
                    after, left = chunk.last_id, left - chunk.count
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # what gather raised: Temporal retries the page
        if not chunks:
            return LaunchedPage()
        return LaunchedPage(chunks[0].first_id, chunks[-1].last_id, sum(c.count for c in chunks),
                            sum(len(c.starts) for c in chunks), [i for c in chunks for i in c.outbox_ids])

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
