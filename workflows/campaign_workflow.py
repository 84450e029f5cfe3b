"""A campaign of type Workflow: freeze the recipients, then start one driver workflow each, page by page.

No parent-child link: a parent can hold 2,000 pending children and driver workflows live for days;
the paging activity starts them with deterministic ids, so a retried page starts nobody twice.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import MAIL_RETRY

with workflow.unsafe.imports_passed_through():
    from activities.mail_batch import BatchSendResult
    from core.temporal import SA_STATUS


@dataclass
class WorkflowCampaignInput:
    campaign_id: int
    task_queue: str
    mail_task_queue: str
    page_size: int = 500


@dataclass
class LaunchPage:
    campaign_id: int
    after_id: int
    limit: int
    task_queue: str
    mail_task_queue: str


@dataclass
class LaunchedPage:
    last_id: int = 0
    count: int = 0
    started: int = 0
    outbox_ids: list[int] = field(default_factory=list)  # the first mails, sent in bulk by the launcher


STEP = {"start_to_close_timeout": timedelta(minutes=10), "heartbeat_timeout": timedelta(minutes=1),
        "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))}


@workflow.defn
class WorkflowCampaignLauncher:
    @workflow.run
    async def run(self, inp: WorkflowCampaignInput) -> int:
        await workflow.execute_activity("freeze_campaign_recipients", inp.campaign_id, result_type=int,
                                        **STEP)  # type: ignore[call-overload]
        after, started, sending = 0, 0, None
        while True:
            page: LaunchedPage = await workflow.execute_activity(
                "launch_driver_workflows",
                LaunchPage(inp.campaign_id, after, inp.page_size, inp.task_queue, inp.mail_task_queue),
                result_type=LaunchedPage, **STEP)  # type: ignore[call-overload]
            started += page.started
            if sending is not None:
                await sending  # one batch of first mails in flight while the next page starts
            sending = workflow.start_activity(
                "send_mail_batch", page.outbox_ids, task_queue=inp.mail_task_queue, result_type=BatchSendResult,
                start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=timedelta(days=2), retry_policy=MAIL_RETRY,
            ) if page.outbox_ids else None
            if page.count < inp.page_size:
                break
            after = page.last_id
        if sending is not None:
            await sending
        await workflow.execute_activity("finish_campaign", inp.campaign_id, **STEP)  # type: ignore[call-overload]
        workflow.upsert_search_attributes([SA_STATUS.value_set("ENVOYE")])
        return started
