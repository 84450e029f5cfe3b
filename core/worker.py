"""The Temporal worker of a deployment, assembled from the services' declarations (`core.platform.ServiceSpec`).

Two workers share one client: the main task queue (workflows and DB activities) and the mail task queue, whose
rate is limited server-side so that no deployment floods its SMTP relay. Beside the main one runs the signal relay
(`core.signals`), which hands the starts and signals recorded by the services to Temporal. `python -m wiring worker`
runs it with every service of this project.
"""

import asyncio
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from core.logging import configure_logging, log
from core.platform import Activities, ServiceSpec
from core.settings import Settings, get_settings
from core.signals import SignalRelay, stop_relay
from core.temporal import LogContextInterceptor, connect, register_search_attributes

# Blocking activities (DB, WeasyPrint, openpyxl) run in this many threads.
ACTIVITY_THREADS = 16
MAIL_ACTIVITIES_IN_FLIGHT = 20


def build_workers(client: Client, settings: Settings, services: Sequence[ServiceSpec], mail_activities: Activities,
                  *, platform_workflows: Sequence[type] = (), task_queue: str | None = None,
                  mail_task_queue: str | None = None, executor: ThreadPoolExecutor) -> list[Worker]:
    """The main and mail workers of `services` (and the platform's own workflows, e.g. the one-off mail); tests pass
    their own task queue names."""
    main = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[*platform_workflows, *(w for spec in services for w in spec.workflows)],
        activities=[a for spec in services if spec.activities for a in spec.activities(settings, client)],
        activity_executor=executor,
        interceptors=[LogContextInterceptor()],
        max_concurrent_activities=ACTIVITY_THREADS,
    )
    mailer = Worker(
        client,
        task_queue=mail_task_queue or settings.mail_task_queue,
        activities=list(mail_activities(settings, client)),
        max_task_queue_activities_per_second=settings.mail_rate_per_second,
        max_concurrent_activities=MAIL_ACTIVITIES_IN_FLIGHT,
        interceptors=[LogContextInterceptor()],
    )
    return [main, mailer]


def build_relay(client: Client, settings: Settings, *, task_queue: str | None = None) -> SignalRelay:
    """The relay that delivers recorded starts and signals to the workflows of `task_queue` (`core.signals`)."""
    return SignalRelay(client, settings, task_queue=task_queue)


async def run(services: Sequence[ServiceSpec], mail_activities: Activities, only: str | None = None,
              platform_workflows: Sequence[type] = ()) -> None:
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
        main_worker, mail_worker = build_workers(client, settings, services, mail_activities,
                                                   platform_workflows=platform_workflows, executor=executor)
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
