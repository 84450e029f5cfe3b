"""A campaign of type Workflow: freeze the recipients, then start one driver workflow each, page by page.

No parent-child link: a parent can hold 2,000 pending children and driver workflows live for days;
the paging activity starts them with deterministic ids, so a retried page starts nobody twice. Each page's first
mails go out in bulk, and "Workflow lancé" is recorded for a driver once the server accepted his first mail.
"""

from datetime import timedelta

from temporalio import workflow

from workflows.common import DB_RETRY, DB_TIMEOUT, start_mail_batch
from workflows.data.campaigns import WORKFLOW_CAMPAIGN, LaunchedPage, LaunchPage, RecordBatch, WorkflowCampaignInput
from workflows.data.mail import BatchSendResult

with workflow.unsafe.imports_passed_through():
    from activities.campaign_email import CampaignEmailActivities
    from activities.driver_workflows import DriverWorkflowActivities
    from core.temporal import SA_STATUS

LAUNCH_TIMEOUT = timedelta(minutes=10)
LAUNCH_HEARTBEAT = timedelta(seconds=30)  # a killed worker's page is started again within about 30 s


@workflow.defn(name=WORKFLOW_CAMPAIGN)
class WorkflowCampaignLauncher:
    @workflow.run
    async def run(self, inp: WorkflowCampaignInput) -> int:
        await workflow.execute_activity_method(
            CampaignEmailActivities.freeze_campaign_recipients, inp.campaign_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        after, started = 0, 0
        sending: tuple[LaunchedPage, workflow.ActivityHandle[BatchSendResult] | None] | None = None
        while True:
            page = await workflow.execute_activity_method(
                DriverWorkflowActivities.launch_driver_workflows,
                LaunchPage(inp.campaign_id, after, inp.page_size, inp.task_queue, inp.mail_task_queue),
                start_to_close_timeout=LAUNCH_TIMEOUT, heartbeat_timeout=LAUNCH_HEARTBEAT, retry_policy=DB_RETRY)
            started += page.started
            if sending is not None:
                await self._record(inp, *sending)  # one batch of first mails in flight while the next page starts
                sending = None
            if page.count:
                sending = page, start_mail_batch(page.outbox_ids, inp.mail_task_queue) if page.outbox_ids else None
            if page.count < inp.page_size:
                break
            after = page.last_id
        if sending is not None:
            await self._record(inp, *sending)
        finished = await workflow.execute_activity_method(
            CampaignEmailActivities.finish_campaign, inp.campaign_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        workflow.upsert_search_attributes([SA_STATUS.value_set(finished.status_label)])
        return started

    async def _record(self, inp: WorkflowCampaignInput, page: LaunchedPage,
                      sending: "workflow.ActivityHandle[BatchSendResult] | None") -> None:
        """Once the page's first mails are sent: "Workflow lancé" for the accepted ones, the error list for the
        refused ones."""
        if sending is not None:
            await sending
        await workflow.execute_activity_method(
            DriverWorkflowActivities.record_launched_page, RecordBatch(inp.campaign_id, page.first_id, page.last_id),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
