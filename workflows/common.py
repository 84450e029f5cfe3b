"""Pieces every workflow shares: the mail step with its retry policy."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.outbox import SendResult

# 4xx and connection errors: back off from 10 s up to 30 min, for as long as a day.
MAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=30))


async def send_mail(outbox_id: int, mail_task_queue: str) -> SendResult:
    """Send one outbox row on the rate-limited mail task queue."""
    return await workflow.execute_activity(
        "send_mail",
        outbox_id,
        task_queue=mail_task_queue,
        start_to_close_timeout=timedelta(minutes=2),
        schedule_to_close_timeout=timedelta(days=1),
        retry_policy=MAIL_RETRY,
        result_type=SendResult,
    )
