"""`python -m core.worker`: the Temporal worker, registering every workflow and activity.

Two workers share one client: the main task queue (workflows and DB activities) and the mail
task queue, whose rate is limited server-side so that no deployment floods its SMTP relay.
"""

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaigns import CampaignActivities
from activities.mail import MailActivities
from core.logging import configure_logging, log
from core.settings import Settings, get_settings
from core.temporal import LogContextInterceptor, connect, register_search_attributes
from workflows.testmail import TestMailWorkflow

WORKFLOWS: list[type] = [TestMailWorkflow]
# Blocking activities (DB, WeasyPrint, openpyxl) run in this many threads.
ACTIVITY_THREADS = 16


def build_workers(client: Client, settings: Settings, *, task_queue: str | None = None,
                  mail_task_queue: str | None = None, executor: ThreadPoolExecutor) -> list[Worker]:
    """The workers of this deployment; tests pass their own task queue names."""
    campaigns = CampaignActivities(settings)
    mail = MailActivities(settings)
    main = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=[campaigns.prepare_test_mail],
        activity_executor=executor,
        interceptors=[LogContextInterceptor()],
        max_concurrent_activities=ACTIVITY_THREADS,
    )
    mailer = Worker(
        client,
        task_queue=mail_task_queue or settings.mail_task_queue,
        activities=[mail.send_mail],
        max_task_queue_activities_per_second=settings.mail_rate_per_second,
        max_concurrent_activities=20,
        interceptors=[LogContextInterceptor()],
    )
    return [main, mailer]


async def main() -> None:
    configure_logging()
    settings = get_settings()
    client = await connect(settings)
    await register_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        workers = build_workers(client, settings, executor=executor)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        log.info("worker.started", task_queues=[settings.task_queue, settings.mail_task_queue])
        await stop.wait()
        log.info("worker.stopping")
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
