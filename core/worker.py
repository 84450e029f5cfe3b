"""`python -m core.worker`: the Temporal worker, registering every workflow and activity.

Two workers share one client: the main task queue (workflows and DB activities) and the mail
task queue, whose rate is limited server-side so that no deployment floods its SMTP relay.
Beside the main one runs the signal relay, which tells workflows of the actions recorded by the services.
"""

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaign_email import CampaignEmailActivities
from activities.campaigns import CampaignActivities
from activities.driver_workflows import DriverWorkflowActivities
from activities.mail import MailActivities
from activities.mail_batch import MailBatchActivities
from activities.removals import RemovalActivities
from core.logging import configure_logging, log
from core.settings import Settings, get_settings
from core.signals import SignalRelay, Starter, stop_relay
from core.temporal import LogContextInterceptor, connect, register_search_attributes
from services.removals.service.process import SIGNAL_KIND as REMOVAL_MANDATE
from services.removals.service.process import start_with_signal as start_removal_mandate
from workflows.campaign_email import EmailCampaignWorkflow
from workflows.campaign_workflow import WorkflowCampaignLauncher
from workflows.driver import DriverWorkflow
from workflows.removal import RemovalRequestWorkflow, RemovalWorkflow
from workflows.testmail import TestMailWorkflow

WORKFLOWS: list[type] = [TestMailWorkflow, EmailCampaignWorkflow, WorkflowCampaignLauncher, DriverWorkflow,
                         RemovalRequestWorkflow, RemovalWorkflow]
# How the signal relay starts a workflow that a recorded action reached before its launcher did.
SIGNAL_STARTERS: dict[str, Starter] = {REMOVAL_MANDATE: start_removal_mandate}
# Blocking activities (DB, WeasyPrint, openpyxl) run in this many threads.
ACTIVITY_THREADS = 16


def build_workers(client: Client, settings: Settings, *, task_queue: str | None = None,
                  mail_task_queue: str | None = None, executor: ThreadPoolExecutor) -> list[Worker]:
    """The workers of this deployment; tests pass their own task queue names."""
    campaigns = CampaignActivities(settings)
    email_campaigns = CampaignEmailActivities(settings)
    mail = MailActivities(settings)
    mail_batch = MailBatchActivities(settings)
    drivers = DriverWorkflowActivities(settings, client)
    removals = RemovalActivities(settings, client)
    main = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=[campaigns.prepare_test_mail, email_campaigns.freeze_campaign_recipients,
                    email_campaigns.prepare_campaign_batch, email_campaigns.record_campaign_batch,
                    email_campaigns.finish_campaign, drivers.launch_driver_workflows, drivers.record_driver_step,
                    drivers.prepare_driver_mail, drivers.finish_driver_workflow,
                    removals.notify_removal_deposers, removals.start_removal_workflows,
                    removals.queue_removal_mails, removals.close_removal_subscription,
                    removals.remind_removal_deposer, removals.alert_removal_overdue],
        activity_executor=executor,
        interceptors=[LogContextInterceptor()],
        max_concurrent_activities=ACTIVITY_THREADS,
    )
    mailer = Worker(
        client,
        task_queue=mail_task_queue or settings.mail_task_queue,
        activities=[mail.send_mail, mail_batch.send_mail_batch],
        max_task_queue_activities_per_second=settings.mail_rate_per_second,
        max_concurrent_activities=20,
        interceptors=[LogContextInterceptor()],
    )
    return [main, mailer]


def build_relay(client: Client, settings: Settings, *, task_queue: str | None = None,
                mail_task_queue: str | None = None) -> SignalRelay:
    """The relay that delivers recorded actions to the workflows of `task_queue` (`core.signals`)."""
    return SignalRelay(client, settings, starters=SIGNAL_STARTERS, task_queue=task_queue,
                       mail_task_queue=mail_task_queue)


async def main(only: str | None = None) -> None:
    """Run both workers, or only one: `--only mail` puts SMTP on its own process (and CPU core)."""
    configure_logging()
    settings = get_settings()
    client = await connect(settings)
    await register_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        main_worker, mail_worker = build_workers(client, settings, executor=executor)
        workers = {"main": [main_worker], "mail": [mail_worker]}.get(only or "", [main_worker, mail_worker])
        tasks = [asyncio.create_task(w.run()) for w in workers]
        # The relay runs beside the main worker (one active per task queue, whatever the number of processes).
        relay = asyncio.create_task(build_relay(client, settings).run()) if main_worker in workers else None
        log.info("worker.started", task_queues=[w.task_queue for w in workers])
        await stop.wait()
        log.info("worker.stopping")
        if relay:
            await stop_relay(relay)
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Relais Temporal worker")
    parser.add_argument("--only", choices=["main", "mail"], help="run a single task queue's worker")
    asyncio.run(main(parser.parse_args().only))
