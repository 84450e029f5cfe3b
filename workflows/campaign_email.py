"""An e-mail campaign: freeze the recipients, then render and send them batch by batch.

Rendering batch k+1 overlaps with sending batch k; the history stays small (a few activities per
batch), and recipients are never held in memory or in payloads beyond one batch of ids.
"""

from temporalio import workflow

from workflows.common import DB_RETRY, DB_TIMEOUT, start_mail_batch
from workflows.data.campaigns import EMAIL_CAMPAIGN, EmailCampaignInput, PrepareBatch, PreparedBatch, RecordBatch

with workflow.unsafe.imports_passed_through():
    from activities.campaign_email import CampaignEmailActivities
    from core.temporal import SA_STATUS


@workflow.defn(name=EMAIL_CAMPAIGN)
class EmailCampaignWorkflow:
    @workflow.run
    async def run(self, inp: EmailCampaignInput) -> int:
        total = await workflow.execute_activity_method(
            CampaignEmailActivities.freeze_campaign_recipients, inp.campaign_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        batch = await self._prepare(inp, 0)
        while batch.count:
            sending = start_mail_batch(batch.outbox_ids, inp.mail_task_queue) if batch.outbox_ids else None
            following = self._prepare(inp, batch.last_id) if batch.count == inp.batch_size else None
            if sending is not None:
                await sending
            await workflow.execute_activity_method(
                CampaignEmailActivities.record_campaign_batch,
                RecordBatch(inp.campaign_id, batch.first_id, batch.last_id), start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY)
            batch = await following if following is not None else PreparedBatch()
        finished = await workflow.execute_activity_method(
            CampaignEmailActivities.finish_campaign, inp.campaign_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        workflow.upsert_search_attributes([SA_STATUS.value_set(finished.status_label)])
        return total

    def _prepare(self, inp: EmailCampaignInput, after_id: int) -> "workflow.ActivityHandle[PreparedBatch]":
        return workflow.start_activity_method(
            CampaignEmailActivities.prepare_campaign_batch, PrepareBatch(inp.campaign_id, after_id, inp.batch_size),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
