"""The bulk sender on real parts (PostgreSQL, the aiosmtpd sink, Temporal), always paced and over 4 connections:
4xx, 5xx and a connection dropped by the server in the same run, a slow server, no server, and a kill -9."""

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities import mail_batch, recorder
from activities.mail_batch import MailBatchActivities, unrecorded_bound
from core import outbox
from core.db import session_scope
from core.models import Organisation, OutboxMessage
from core.settings import Settings, get_settings
from services.campaigns.models import Campaign, DistributionList, MailTemplate
from services.campaigns.service.campaigns import STATUS_LABELS, progress, result_rows
from tests.support.factories import make_org
from tests.support.smtp import DROP, SmtpSink, free_port
from tests.support.waiting import wait_until
from workflows.campaign_email import EmailCampaignWorkflow
from workflows.data.campaigns import EmailCampaignInput

RATE, CONNECTIONS = 200.0, 4
ROOT = Path(__file__).resolve().parent.parent
# The batch in a process of its own, over a real ActivityEnvironment: the crash test kills it.
CHILD = """
import asyncio, sys
from temporalio.testing import ActivityEnvironment
from activities.mail_batch import MailBatchActivities
from core.settings import get_settings
ids = [int(a) for a in sys.argv[1:]]
asyncio.run(ActivityEnvironment().run(MailBatchActivities(get_settings()).send_mail_batch, ids))
"""


def _paced(**changes: object) -> Settings:
    return get_settings().model_copy(update={"smtp_max_per_second": RATE, "smtp_connections": CONNECTIONS,
                                             **changes})


def _enqueue(count: int) -> list[int]:
    settings = get_settings()
    tag = uuid4().hex[:8]
    messages = [outbox.NewMessage(f"batch-{tag}-{n}", [f"lot{n}@{tag}.example"], f"Relevé {n}", f"Bonjour {n}",
                                  f"<p>Bonjour {n}</p>") for n in range(count)]
    with session_scope() as session:
        org_id = session.query(Organisation.id).filter_by(slug="garonne").scalar()
        ids = outbox.enqueue_many(session, settings=settings, organisation_id=org_id, messages=messages)
    return [ids[m.key] for m in messages]


def _enqueue_injected() -> int:
    """A row whose subject carries a line break (`enqueue` refuses it; an older row or a bug could hold one)."""
    key = f"batch-injected-{uuid4().hex[:8]}"
    with session_scope() as session:
        org_id = session.query(Organisation.id).filter_by(slug="garonne").scalar()
        row = OutboxMessage(organisation_id=org_id, key=key, message_id=outbox.message_id_for(key, get_settings()),
                            sender=get_settings().mail_from, recipients=["x@garonne.example"], cc=[],
                            subject="Relevé\nBcc: victime@ailleurs.example", text_body="Bonjour", attachments=[],
                            status="pending", attempts=0)
        session.add(row)
        session.flush()
        return row.id


def _rows(ids: list[int]) -> dict[int, OutboxMessage]:
    with session_scope() as session:
        rows = {r.id: r for r in session.query(OutboxMessage).filter(OutboxMessage.id.in_(ids))}
        session.expunge_all()
        return rows


def _received(sink: SmtpSink) -> Counter[str]:
    with sink.lock:
        return Counter(str(m["Message-ID"]) for m in sink.messages)


async def test_paced_batch_on_four_connections_sends_each_mail_once_through_4xx_5xx_and_a_dropped_connection(
        sink: SmtpSink) -> None:
    ids = [*_enqueue(100), _enqueue_injected()]
    sink.scripted_replies.extend(["451 4.3.0 Plus tard", "550 5.1.1 Destinataire inconnu", DROP,
                                  "421 4.7.0 Trop de connexions", "554 5.7.1 Refusé pour politique"])
    heartbeats: list[int] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(int(details[0]))
    activities = MailBatchActivities(_paced())
    started = time.monotonic()
    with pytest.raises(ApplicationError, match="3 message\\(s\\) en attente") as failed:
        await env.run(activities.send_mail_batch, ids)
    elapsed = time.monotonic() - started
    assert failed.value.type == "TemporarySmtpError" and not failed.value.non_retryable
    assert elapsed >= 99 / RATE, "the pace is shared by the 4 connections"  # 100 SMTP transactions at 200/s

    rows = _rows(ids)
    by_status = Counter(r.status for r in rows.values())
    assert by_status == {"sent": 95, "ko": 3, "pending": 3}
    assert all(r.attempts == 1 for r in rows.values()), "every row recorded once"
    ko = sorted(r.last_reply or "" for r in rows.values() if r.status == "ko")
    assert ko[0].startswith("550 5.1.1 Destinataire inconnu") and ko[1].startswith("554 5.7.1 Refusé")
    assert "Retour à la ligne interdit" in ko[2]
    pending = [r.last_reply or "" for r in rows.values() if r.status == "pending"]
    assert any(p.startswith("451") for p in pending) and all(p for p in pending)
    assert sink.dropped == 1
    assert heartbeats and heartbeats == sorted(heartbeats) and heartbeats[-1] == 101, "progress heartbeated"
    assert len(heartbeats) >= 101 // mail_batch.GROUP_LIMIT, "a heartbeat per committed group"

    retried = await env.run(activities.send_mail_batch, ids)  # what Temporal does after its backoff
    assert (retried.sent, retried.ko, retried.pending) == (3, 0, 0)
    again = await env.run(activities.send_mail_batch, ids)
    assert (again.sent, again.ko, again.pending) == (0, 0, 0)

    rows = _rows(ids)
    received = _received(sink)
    sent = {r.message_id for r in rows.values() if r.status == "sent"}
    assert len(sent) == 98 and set(received) == sent and set(received.values()) == {1}, "each mail received once"
    assert {r.attempts for r in rows.values() if r.status == "sent" and r.last_reply} >= {1, 2}


async def test_a_slow_paced_server_still_gets_heartbeats(sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to commit for a while (here 0.5 s between mails): the batch still says it is alive."""
    monkeypatch.setattr(recorder, "HEARTBEAT_SECONDS", 0.05)
    ids = _enqueue(3)
    heartbeats: list[int] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(int(details[0]))
    result = await env.run(MailBatchActivities(_paced(smtp_max_per_second=2)).send_mail_batch, ids)
    assert (result.sent, result.ko, result.pending) == (3, 0, 0)
    assert heartbeats.count(1) >= 3 and heartbeats.count(2) >= 3 and heartbeats[-1] == 3


async def test_no_smtp_server_leaves_every_row_pending_with_its_error(sink: SmtpSink) -> None:
    ids = _enqueue(10)
    activities = MailBatchActivities(_paced(smtp_port=free_port()))  # nobody listens there
    with pytest.raises(ApplicationError, match="10 message\\(s\\) en attente") as failed:
        await ActivityEnvironment().run(activities.send_mail_batch, ids)
    assert failed.value.type == "TemporarySmtpError"
    rows = _rows(ids).values()
    assert all(r.status == "pending" and r.attempts == 1 for r in rows)
    assert all("SMTPConnectError" in (r.last_reply or "") for r in rows)
    assert not sink.messages
    sent = await ActivityEnvironment().run(MailBatchActivities(_paced()).send_mail_batch, ids)  # server back
    assert sent.sent == 10 and set(_received(sink).values()) == {1}


async def test_a_killed_sender_resends_at_most_its_unrecorded_bound(sink: SmtpSink) -> None:
    """kill -9 of the sending process after K mails reached the server, then the retry: every row ends sent, and the
    duplicates are at most the mails in flight plus the outcomes waiting for their commit."""
    ids = _enqueue(300)
    env = {**os.environ, "SMTP_MAX_PER_SECOND": str(RATE), "SMTP_CONNECTIONS": str(CONNECTIONS)}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, *map(str, ids), cwd=ROOT, env=env)
    try:
        await wait_until(lambda: len(sink.messages) >= 60, seconds=60, what="the child sends")
        child.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    received_before = len(sink.messages)
    recorded = sum(1 for r in _rows(ids).values() if r.status == "sent")
    assert received_before < 300, "killed in the middle of the batch"
    assert received_before - recorded <= unrecorded_bound(CONNECTIONS)

    result = await ActivityEnvironment().run(MailBatchActivities(_paced()).send_mail_batch, ids)
    assert result.sent == 300 - recorded
    rows = _rows(ids)
    assert all(r.status == "sent" for r in rows.values())
    received = _received(sink)
    assert set(received) == {r.message_id for r in rows.values()}
    duplicates = sum(received.values()) - 300
    assert duplicates == received_before - recorded <= unrecorded_bound(CONNECTIONS)


def _email_campaign(recipients: int) -> int:
    org = make_org(count=recipients)
    with session_scope() as session:
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        template = MailTemplate(organisation_id=org.id, name="Relevé", subject="Relevé kilométrique de {{prenom}}",
                                body="Bonjour {{prenom}} {{nom}},\n\n{{lien_connexion}}")
        session.add_all([dlist, template])
        session.flush()
        campaign = Campaign(organisation_id=org.id, name="Relevé paced", kind="email", list_id=dlist.id,
                            template_id=template.id, status="sending")  # as the launch leaves it
        session.add(campaign)
        session.flush()
        return campaign.id


async def test_paced_email_campaign_through_4xx_5xx_and_a_dropped_connection_ends_envoye_with_each_mail_once(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    """The real EmailCampaignWorkflow, its mail worker paced with 4 connections; the 4xx and the dropped
    connection are retried by Temporal after its backoff (skipped time), the 5xx land in the error list."""
    client, queue, mail_queue = time_worker
    paced_queue = f"{mail_queue}-paced"
    campaign_id = _email_campaign(40)
    sink.scripted_replies.extend(["451 4.3.0 Plus tard", "550 5.1.1 Destinataire inconnu", DROP,
                                  "554 5.7.1 Refusé pour politique"])
    async with Worker(client, task_queue=paced_queue, activities=[MailBatchActivities(_paced()).send_mail_batch]):
        total = await client.execute_workflow(EmailCampaignWorkflow.run, EmailCampaignInput(campaign_id, paced_queue,
                                                                                            batch_size=15),
                                              id=f"campaign-{campaign_id}", task_queue=queue)
    assert total == 40
    received = _received(sink)
    assert len(received) == 38 and set(received.values()) == {1}, "each accepted mail received once"
    assert sink.dropped == 1
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None and STATUS_LABELS[campaign.status] == "ENVOYE"
        done = progress(session, campaign)
        assert (done.sent, done.errors, done.percent) == (38, 2, 100)
        errors = [row[-1] for row in result_rows(session, campaign, "error")]
    assert sorted(str(e).split(" : ", 1)[1][:9] for e in errors) == ["550 5.1.1", "554 5.7.1"]
    assert all(str(e).startswith("Refusé par le serveur de messagerie : ") for e in errors)


async def test_heartbeat_timeout_of_the_workflows_leaves_room_for_the_heartbeats() -> None:
    """The workflows' heartbeat timeout retries a crashed batch within ~30 s; the batch heartbeats well inside it."""
    from workflows.common import BATCH_HEARTBEAT

    assert BATCH_HEARTBEAT.total_seconds() <= 20
    assert BATCH_HEARTBEAT.total_seconds() >= 3 * recorder.HEARTBEAT_SECONDS

