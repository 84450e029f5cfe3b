"""An e-mail campaign: freeze the recipients, then render and send them batch by batch.

Rendering batch k+1 overlaps with sending batch k; the history stays small (a few activities per
batch), and recipients are never held in memory or in payloads beyond one batch of ids.
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
class EmailCampaignInput:
    campaign_id: int
    mail_task_queue: str
    batch_size: int = 500


@dataclass
class PrepareBatch:
    campaign_id: int
    after_id: int
    limit: int


@dataclass
class PreparedBatch:
    first_id: int = 0
    last_id: int = 0
    count: int = 0
    outbox_ids: list[int] = field(default_factory=list)


@dataclass
class RecordBatch:
    campaign_id: int
    first_id: int
    last_id: int


DB_STEP = {"start_to_close_timeout": timedelta(minutes=5),
           "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))}


@workflow.defn
class EmailCampaignWorkflow:
    @workflow.run
    async def run(self, inp: EmailCampaignInput) -> int:
        total = await workflow.execute_activity("freeze_campaign_recipients", inp.campaign_id, result_type=int,
                                                **DB_STEP)  # type: ignore[call-overload]
        batch = await self._prepare(inp, 0)
        while batch.count:
            sending = workflow.start_activity(
                "send_mail_batch", batch.outbox_ids, task_queue=inp.mail_task_queue, result_type=BatchSendResult,
                start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=timedelta(days=2), retry_policy=MAIL_RETRY,
            ) if batch.outbox_ids else None
            following = self._prepare(inp, batch.last_id) if batch.count == inp.batch_size else None
            if sending is not None:
                await sending
            await workflow.execute_activity("record_campaign_batch",
                                            RecordBatch(inp.campaign_id, batch.first_id, batch.last_id),
                                            **DB_STEP)  # type: ignore[call-overload]
            batch = await following if following is not None else PreparedBatch()
        await workflow.execute_activity("finish_campaign", inp.campaign_id, **DB_STEP)  # type: ignore[call-overload]
        workflow.upsert_search_attributes([SA_STATUS.value_set("ENVOYE")])
        return total

    def _prepare(self, inp: EmailCampaignInput, after_id: int) -> "workflow.ActivityHandle[PreparedBatch]":
        step = PrepareBatch(inp.campaign_id, after_id, inp.batch_size)
        return workflow.start_activity("prepare_campaign_batch", step, result_type=PreparedBatch,
                                       **DB_STEP)  # type: ignore[call-overload,no-any-return]
