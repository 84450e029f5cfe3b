"""Pieces every workflow shares: the mail steps with their retry policy, and the database step's policy."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.data.mail import BatchSendResult, SendResult

with workflow.unsafe.imports_passed_through():
    from activities.mail import MailActivities
    from activities.mail_batch import MailBatchActivities

# 4xx and connection errors: back off from 10 s up to 30 min, for as long as a day.
MAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=30))
# A bulk send heartbeats every few seconds: a crashed mail worker's batch is retried within about 30 s.
BATCH_HEARTBEAT = timedelta(seconds=20)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))
# Short: a step held by a killed worker is retried elsewhere this soon (they take seconds).
DB_TIMEOUT = timedelta(minutes=1)


async def send_mail(outbox_id: int, mail_task_queue: str) -> SendResult:
    """Send one outbox row on the rate-limited mail task queue."""
    return await workflow.execute_activity_method(
        MailActivities.send_mail, outbox_id, task_queue=mail_task_queue,
        start_to_close_timeout=timedelta(minutes=2), schedule_to_close_timeout=timedelta(days=1),
        retry_policy=MAIL_RETRY,
    )


def start_mail_batch(outbox_ids: list[int], mail_task_queue: str) -> "workflow.ActivityHandle[BatchSendResult]":
    """Send many outbox rows over a few reused SMTP connections (rows already sent or KO are skipped)."""
    return workflow.start_activity_method(
        MailBatchActivities.send_mail_batch, outbox_ids, task_queue=mail_task_queue,
        start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=BATCH_HEARTBEAT,
        schedule_to_close_timeout=timedelta(days=2), retry_policy=MAIL_RETRY,
    )
