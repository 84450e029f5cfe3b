"""A manager's one-off test e-mail: render for one driver, write to the outbox, send."""

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

from workflows.common import send_mail

with workflow.unsafe.imports_passed_through():
    from core.outbox import SendResult


@dataclass
class TestMailInput:
    __test__ = False
    test_mail_id: int
    mail_task_queue: str


@workflow.defn
class TestMailWorkflow:
    __test__ = False

    @workflow.run
    async def run(self, inp: TestMailInput) -> SendResult:
        outbox_id = await workflow.execute_activity(
            "prepare_test_mail", inp.test_mail_id, start_to_close_timeout=timedelta(seconds=30), result_type=int
        )
        return await send_mail(outbox_id, inp.mail_task_queue)
