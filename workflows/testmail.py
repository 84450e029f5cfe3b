"""A manager's one-off test e-mail: render for one driver, write to the outbox, send."""

from datetime import timedelta

from temporalio import workflow

from workflows.common import send_mail
from workflows.data.campaigns import TEST_MAIL, TestMailInput
from workflows.data.mail import SendResult

with workflow.unsafe.imports_passed_through():
    from activities.campaigns import CampaignActivities


@workflow.defn(name=TEST_MAIL)
class TestMailWorkflow:
    __test__ = False

    @workflow.run
    async def run(self, inp: TestMailInput) -> SendResult:
        outbox_id = await workflow.execute_activity_method(CampaignActivities.prepare_test_mail, inp.test_mail_id,
                                                           start_to_close_timeout=timedelta(seconds=30))
        return await send_mail(outbox_id, inp.mail_task_queue)
