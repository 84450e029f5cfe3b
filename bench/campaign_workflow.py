"""Benchmark: a Workflow campaign of 10,000 drivers on the dev server.

    .venv/bin/python -m bench.campaign_workflow [--drivers 10000]

Prints the time from the launch until every first mail is in the SMTP sink, and, in the same run on the
same server, the bare workflow-start rate (empty workflows started by the same paging code); the target
is a ratio >= 0.7. Also prints the main worker's peak RSS with all driver workflows open (<= 400 MB).
"""

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

import psutil
from temporalio import workflow

from bench.common import free_port, smtp_sink, start_database, temporal_and_workers

TARGET_RATIO, RSS_LIMIT_MB = 0.7, 400


@workflow.defn(sandboxed=False)
class EmptyWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@dataclass
class Seeded:
    campaign_id: int
    organisation_id: int


def seed(drivers: int) -> Seeded:
    from sqlalchemy.dialects.postgresql import insert

    from core.db import session_scope
    from core.models import Organisation
    from services.campaigns.models import Campaign, DistributionList, Driver, MailTemplate, WorkflowDefinition

    with session_scope() as session:
        org = Organisation(slug="bench-wf", name="Bench WF", kind="fleet")
        session.add(org)
        session.flush()
        rows = [{"organisation_id": org.id, "matricule": f"W{n:06d}", "nom": f"Nom{n}", "prenom": f"Prénom{n}",
                 "email": f"w{n}@bench.example", "code_postal": "31000", "departement": "31"} for n in range(drivers)]
        for start in range(0, drivers, 2000):
            session.execute(insert(Driver).values(rows[start:start + 2000]))
        template = MailTemplate(organisation_id=org.id, name="Relevé", subject="Relevé kilométrique",
                                body="Bonjour {{prenom}},\n\n{{lien_connexion}}")
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        definition = WorkflowDefinition(organisation_id=org.id, name="WF-Relevé", family="compteurs", enabled=True,
                                        steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "",
                                                "template_id": template.id},
                                               {"type": "attente", "name": "Attente 5j", "days": 5}])
        session.add(definition)
        session.flush()
        campaign = Campaign(organisation_id=org.id, name="Bench", kind="workflow", list_id=dlist.id,
                            workflow_definition_id=definition.id, status="sending")
        session.add(campaign)
        session.flush()
        return Seeded(campaign.id, org.id)


def sent_count(organisation_id: int) -> int:
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import OutboxMessage

    with session_scope() as session:
        return session.scalar(select(func.count()).where(OutboxMessage.organisation_id == organisation_id,
                                                         OutboxMessage.status == "sent")) or 0


async def bare_start_rate(client: object, count: int) -> float:
    """Empty workflows, started 50 at a time like the campaign's paging activity, run by a worker here."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    assert isinstance(client, Client)
    gate = asyncio.Semaphore(50)

    async def start(n: int) -> None:
        async with gate:
            await client.start_workflow(EmptyWorkflow.run, id=f"bare-{n}", task_queue="bench-bare")

    async with Worker(client, task_queue="bench-bare", workflows=[EmptyWorkflow]):
        started = time.perf_counter()
        await asyncio.gather(*(start(n) for n in range(count)))
        return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    os.environ.update(ENVIRONMENT="test", SECRET_KEY="bench-secret-" + "x" * 40, LOG_FORMAT="json",
                      SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    start_database()
    from core.settings import get_settings
    from workflows.campaign_workflow import WorkflowCampaignInput, WorkflowCampaignLauncher

    seeded = seed(args.drivers)
    settings = get_settings()
    with smtp_sink(port):
        async with temporal_and_workers() as client:
            bare = await bare_start_rate(client, min(args.drivers, 3000))
            main_worker = psutil.Process(client.worker_pids["main"])  # type: ignore[attr-defined]
            peak = 0
            started = time.perf_counter()
            await client.start_workflow(  # type: ignore[attr-defined]
                WorkflowCampaignLauncher.run,
                WorkflowCampaignInput(seeded.campaign_id, settings.task_queue, settings.mail_task_queue),
                id=f"campaign-{seeded.campaign_id}", task_queue=settings.task_queue)
            while sent_count(seeded.organisation_id) < args.drivers:
                peak = max(peak, main_worker.memory_info().rss)
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            peak = max(peak, main_worker.memory_info().rss)
    rate = args.drivers / elapsed
    print(f"workflow campaign: {args.drivers} first mails in the sink after {elapsed:.1f} s → {rate:.0f} drivers/s")
    print(f"bare workflow-start rate on the same server: {bare:.0f} workflows/s")
    print(f"ratio = {rate / bare:.2f} (target >= {TARGET_RATIO})")
    print(f"main worker peak RSS with {args.drivers} driver workflows open: {peak / 2**20:.0f} MB "
          f"(limit {RSS_LIMIT_MB} MB → {peak / 2**20 / RSS_LIMIT_MB:.2f} of the limit)")


if __name__ == "__main__":
    asyncio.run(main())
