"""The platform's one-off mail: a row already in the outbox (a password reset link...), sent on the mail queue.

Started through `core.signals.queue_start` in the transaction that wrote the row, so the mail leaves if and only if
that commits; `send_mail` never sends a row twice.
"""

from temporalio import workflow

from workflows.common import send_mail
from workflows.data.mail import SendResult, SingleMailInput

with workflow.unsafe.imports_passed_through():
    from core.temporal import SINGLE_MAIL


@workflow.defn(name=SINGLE_MAIL)
class SingleMailWorkflow:
    @workflow.run
    async def run(self, inp: SingleMailInput) -> SendResult:
        return await send_mail(inp.outbox_id, inp.mail_task_queue)
