"""The chaos bench's verdict, once the run is over: every recipient's final state, read from the read model, the
outbox, the SMTP sink and the workflows themselves, and what is stuck.

A recipient is "in exactly one final state" when the read model, its outbox row and the sink agree: sent (the row
sent, its Message-ID received) or in error (not sent, not received); for a driver of a Workflow campaign, also one
follow-up, open at its wait step, with its workflow running at that step; for a removal mandate, the status the
deposer's click gave it (Acceptée) or Prévenu, the same in its workflow, and the requester's alert sent and
received once clicked; for a notice of the mail robot, OK with one send, its outbox row sent, received (or KO only
with a refusal from the server), nothing claimed, pending or «sending» left, and its workflow running with the
status it applied.
"""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

T = TypeVar("T")


@dataclass
class FlowReport:
    name: str
    unit: str  # recipients, drivers, mandates
    total: int
    final: int
    details: Counter[str] = field(default_factory=Counter)
    stuck: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duplicates: int | None = None  # counted by the check itself (None: the sink's re-deliveries by Message-ID)

    @property
    def percent(self) -> float:
        return 100.0 * self.final / self.total if self.total else 0.0


async def _bounded(items: Iterable[T], call: Callable[[T], Awaitable[object]], parallel: int = 16) -> list[object]:
    gate = asyncio.Semaphore(parallel)

    async def one(item: T) -> object:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError:
        return None


async def query(client: Client, workflow_id: str, name: str) -> str | None:
    try:
        return str(await client.get_workflow_handle(workflow_id).query(name))
    except RPCError as exc:
        return f"? {exc.status.name if exc.status else exc}"


def _recipients(campaign_id: int) -> list[tuple[int, str, str | None, str | None]]:
    """(driver id, recipient state, outbox status, Message-ID) of every recipient of the campaign: its outbox row is
    the recipient's, or for a Workflow campaign its driver workflow's first mail (key `<workflow id>-step-0`)."""
    from core.db import session_scope
    from core.models import OutboxMessage
    from services.campaigns.models import CampaignRecipient

    with session_scope() as session:
        rows = list(session.execute(
            select(CampaignRecipient.driver_id, CampaignRecipient.state, OutboxMessage.status, OutboxMessage.message_id)
            .outerjoin(OutboxMessage, OutboxMessage.id == CampaignRecipient.outbox_id)
            .where(CampaignRecipient.campaign_id == campaign_id)))
        prefix = f"campaign-{campaign_id}-driver-"
        first_mails = {int(key.removeprefix(prefix).removesuffix("-step-0")): (status, mid)
                       for key, status, mid in session.execute(
                           select(OutboxMessage.key, OutboxMessage.status, OutboxMessage.message_id)
                           .where(OutboxMessage.key.like(f"{prefix}%-step-0")))}
    return [(driver, state, *(first_mails.get(driver, (None, None)) if mid is None else (outbox, mid)))
            for driver, state, outbox, mid in rows]


def _campaign_status(campaign_id: int) -> str:
    from core.db import session_scope
    from services.campaigns.models import Campaign

    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        return campaign.status if campaign else "missing"


def _recipient_state(state: str, outbox: str | None, received: int) -> str:
    """The recipient's final state, or what is wrong with it."""
    if state == "sent":
        if outbox != "sent":
            return f"sent in the read model, outbox row {outbox}"
        return "sent" if received else "sent but never received (lost)"
    if state == "error":
        return "in error" if not received else "in error but received"
    return f"not final ({state})"


async def check_campaign(client: Client, *, name: str, campaign_id: int, expected: int, seen: Counter[str],
                         wait_label: str | None = None) -> FlowReport:
    """An e-mail campaign, or with `wait_label` a Workflow campaign (Mail then Attente)."""
    rows = _recipients(campaign_id)
    report = FlowReport(name, "drivers" if wait_label else "recipients", expected, 0)
    if len(rows) != expected:
        report.notes.append(f"{len(rows)} recipients frozen instead of {expected}")
    followups = _followups(campaign_id) if wait_label else {}
    steps: dict[str, str | None] = {}
    if wait_label:
        running = [wid for wid, status, _step in followups.values() if status == "en_cours"]
        answers = await _bounded(running, lambda w: query(client, w, "current_step"))
        steps = {wid: str(answer) if answer is not None else None for wid, answer in zip(running, answers, strict=True)}
    for driver_id, state, outbox, mid in rows:
        verdict = _recipient_state(state, outbox, seen[mid] if mid else 0)
        if wait_label and verdict == "sent":
            verdict = _driver_state(followups.get(driver_id), steps, wait_label)
        report.details[verdict] += 1
        report.final += verdict in ("sent", "in error")
    status = _campaign_status(campaign_id)
    if status != "sent":
        report.stuck.append(f"campaign {campaign_id} is {status}, not sent (ENVOYE)")
    launcher = await workflow_status(client, f"campaign-{campaign_id}")
    if launcher != WorkflowExecutionStatus.COMPLETED:
        report.stuck.append(f"workflow campaign-{campaign_id} : {launcher.name if launcher else 'not found'}")
    if wait_label:
        open_ones = {wid for wid, status, _ in followups.values() if status == "en_cours"}
        wrong = [wid for wid in open_ones if steps.get(wid) != wait_label]
        if wrong:
            report.stuck.append(f"{len(wrong)} driver workflow(s) not at step {wait_label!r} "
                                f"(e.g. {wrong[0]}: {steps.get(wrong[0])})")
    return report


def _followups(campaign_id: int) -> dict[int, tuple[str, str, str | None]]:
    """driver id → (workflow id, status, step label); a driver with several follow-ups is marked "double"."""
    from core.db import session_scope
    from services.campaigns.models import FollowUp

    with session_scope() as session:
        rows = list(session.execute(select(FollowUp.driver_id, FollowUp.workflow_id, FollowUp.status,
                                           FollowUp.step_label).where(FollowUp.campaign_id == campaign_id)))
    found: dict[int, tuple[str, str, str | None]] = {}
    for driver_id, workflow_id, status, step in rows:
        found[driver_id] = (workflow_id, "double" if driver_id in found else status, step)
    return found


def _driver_state(followup: tuple[str, str, str | None] | None, steps: dict[str, str | None], wait: str) -> str:
    if followup is None:
        return "mail sent but no follow-up"
    workflow_id, status, step = followup
    if status != "en_cours" or step != wait:
        return f"follow-up {status} at step {step}"
    if steps.get(workflow_id) != wait:
        return f"workflow at step {steps.get(workflow_id)}"
    return "sent"


async def check_removals(client: Client, *, request_id: int, clicked: set[int], failed: set[int],
                         seen: Counter[str]) -> FlowReport:
    """The request's mandates: clicked ones Acceptée (read model and workflow, alert received), others Prévenu;
    those whose click failed over HTTP are not final (a person got an error)."""
    from core.db import session_scope
    from core.models import OutboxMessage
    from services.removals.models import Mandate

    with session_scope() as session:
        mandates = list(session.execute(select(Mandate.id, Mandate.status, Mandate.workflow_id)
                                        .where(Mandate.request_id == request_id)))
        mails = {key: (status, mid) for key, status, mid in session.execute(
            select(OutboxMessage.key, OutboxMessage.status, OutboxMessage.message_id)
            .where(OutboxMessage.key.like("removal-%")))}
    statuses = await _bounded([m[2] for m in mandates], lambda w: query(client, w, "current_status"))
    report = FlowReport("removal clicks", "mandates", len(mandates), 0)
    mismatched = 0
    for (mandate_id, status, _wid), engine in zip(mandates, statuses, strict=True):
        expected = "acceptee" if mandate_id in clicked else "prevenu"
        alert = mails.get(f"removal-{mandate_id}-acceptee")
        if mandate_id in failed:
            verdict = f"click failed over HTTP (now {status}, workflow {engine})"
        elif status != expected:
            verdict = f"{status} in the read model instead of {expected}"
        elif engine != expected:
            verdict, mismatched = f"workflow says {engine}, read model {status}", mismatched + 1
        elif expected == "acceptee" and (alert is None or alert[0] != "sent" or not seen[alert[1]]):
            verdict = "accepted, requester alert " + ("never written" if alert is None else
                                                      f"{alert[0]}, received {seen[alert[1]]} time(s)")
        else:
            verdict = "accepted" if expected == "acceptee" else "notified (not clicked)"
        report.details[verdict] += 1
        report.final += verdict in ("accepted", "notified (not clicked)")
    notified = [(s, m) for k, (s, m) in mails.items() if k.startswith(f"removal-notify-{request_id}-")]
    report.notes.append(f"deposers' notification mails sent and received: "
                        f"{sum(1 for s, m in notified if s == 'sent' and seen[m])}/{len(notified)}")
    if mismatched:
        report.stuck.append(f"{mismatched} mandate(s) whose workflow status differs from the read model")
    launcher = await workflow_status(client, f"removal-request-{request_id}")
    if launcher != WorkflowExecutionStatus.COMPLETED:
        report.stuck.append(f"workflow removal-request-{request_id} : {launcher.name if launcher else 'not found'}")
    return report


def leftovers() -> list[str]:
    """Outbox rows still pending, and recorded starts or signals not delivered to Temporal."""
    from core.db import session_scope
    from core.models import OutboxMessage

    found = []
    with session_scope() as session:
        pending = session.scalar(select(func.count()).where(OutboxMessage.status == "pending")) or 0
        if pending:
            found.append(f"{pending} outbox row(s) still pending")
        undelivered = undelivered_signals(session)
        if undelivered:
            found.append(f"{undelivered} recorded start(s)/signal(s) never delivered to Temporal")
    return found


def undelivered_signals(session: object) -> int:
    """Rows of the transactional start/signal outbox (`core.signals`) not delivered yet."""
    from sqlalchemy.orm import Session

    from core import models

    assert isinstance(session, Session)
    table = getattr(models, "WorkflowSignal", None) or getattr(models, "WorkflowCommand", None)
    if table is None or not hasattr(table, "delivered_at"):
        return 0
    return session.scalar(select(func.count()).where(table.delivered_at.is_(None))) or 0


def clicked_mandates(links: Iterable[str]) -> set[int]:
    """The mandates behind "Accepter" links (their tokens name them)."""
    from core.links import read_token
    from services.removals.service.tokens import KINDS

    purpose = KINDS["accepter"][1]
    return {int(read_token(url.rsplit("/", 1)[1], purpose).subject.removeprefix("mandate-")) for url in links}


@dataclass(frozen=True)
class _NoticeRow:
    notice_id: int
    status: str
    email: str
    workflow_id: str
    claimed: bool
    pending: str | None
    validated_at: datetime | None
    sent_at: datetime | None
    sends: tuple[tuple[str, str | None, str | None, str | None], ...]  # (status, outbox status, Message-ID, reply)


def _notices(organisation_id: int, run_id: int) -> list[_NoticeRow]:
    from core.db import session_scope
    from core.models import OutboxMessage
    from services.notices.models import Notice, NoticeSend

    with session_scope() as session:
        notices = list(session.execute(
            select(Notice.id, Notice.status, Notice.email, Notice.workflow_id, Notice.claimed_at, Notice.pending_action,
                   Notice.validated_at, Notice.sent_at)
            .where(Notice.organisation_id == organisation_id, Notice.run_id == run_id).order_by(Notice.id)))
        sends: dict[int, list[tuple[str, str | None, str | None, str | None]]] = {}
        for notice_id, status, outbox, mid, reply in session.execute(
                select(NoticeSend.notice_id, NoticeSend.status, OutboxMessage.status, OutboxMessage.message_id,
                       NoticeSend.reply)
                .join(Notice, Notice.id == NoticeSend.notice_id)
                .outerjoin(OutboxMessage, OutboxMessage.id == NoticeSend.outbox_id)
                .where(Notice.organisation_id == organisation_id, Notice.run_id == run_id)
                .order_by(NoticeSend.attempt)):
            sends.setdefault(notice_id, []).append((status, outbox, mid, reply))
    return [_NoticeRow(n, status, email, wid, claimed is not None, pending, validated, sent, tuple(sends.get(n, [])))
            for n, status, email, wid, claimed, pending, validated, sent in notices]


def notices_settled(organisation_id: int, run_id: int | None, expected: int) -> bool:
    """The run's notices all made, each OK or KO, nothing claimed, pending or «sending» left."""
    if run_id is None:
        return False
    rows = _notices(organisation_id, run_id)
    return len(rows) == expected and all(r.status in ("OK", "KO") and not r.claimed and not r.pending
                                         and all(s[0] != "sending" for s in r.sends) for r in rows)


def _notice_state(row: _NoticeRow, seen: Counter[str], received: int) -> str:
    """The notice's final state, or what is wrong with it."""
    if row.status == "OK":
        ok = [s for s in row.sends if s[0] == "OK"]
        if len(row.sends) != 1 or len(ok) != 1:
            return f"OK with {len(row.sends)} send(s), {len(ok)} of them OK"
        _status, outbox, mid, _reply = ok[0]
        if outbox != "sent":
            return f"OK, outbox row {outbox}"
        return "sent (OK)" if mid and seen[mid] and received else "OK but never received (lost)"
    if row.status == "KO":
        reply = row.sends[-1][3] if row.sends else None
        if reply and reply[:1] == "5" and not received:
            return "refused by the server (KO)"
        return f"KO ({reply or 'no send'}), received {received} time(s)"
    return f"not final ({row.status})"


async def _notice_workflow(client: Client, workflow_id: str) -> tuple[str, str | None, int]:
    """(status name, RelaisStatus, pending activities) of a notice's workflow."""
    from core.temporal import SA_STATUS

    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        return f"? {exc.status.name if exc.status else exc}", None, 0
    return (described.status.name if described.status else "?", described.typed_search_attributes.get(SA_STATUS),
            len(described.raw_description.pending_activities))


def _span(moments: Iterable[datetime | None], since: float) -> str:
    found = sorted(m.timestamp() - since for m in moments if m is not None)
    return f"{found[0]:.0f}-{found[-1]:.0f} s" if found else "never"


async def check_notices(client: Client, *, organisation_id: int, slug: str, run_id: int | None,
                        validated: float | None, expected: int, seen: Counter[str], by_recipient: Counter[str],
                        domain: str) -> FlowReport:
    """The run's notices sent by the mail robot: one final state each, received once (duplicates counted by
    recipient, whatever the Message-ID), their workflows open at the status they applied, the run's workflow
    completed, the robot's running and not left waiting after an error."""
    from services.notices.models import RobotSettings
    from services.notices.service.statuses import LABELS

    report = FlowReport("notices robot", "notices", expected, 0)
    if run_id is None:
        report.stuck.append("the notices run was never launched")
        return report
    rows = _notices(organisation_id, run_id)
    if len(rows) != expected:
        report.notes.append(f"{len(rows)} notices made instead of {expected}")
    for row in rows:
        verdict = _notice_state(row, seen, by_recipient[row.email])
        report.details[verdict] += 1
        report.final += verdict in ("sent (OK)", "refused by the server (KO)")
    if validated is not None:
        report.notes.append(f"after «Valider»: V applied by their workflows "
                            f"{_span((r.validated_at for r in rows), validated)}, OK (sent) "
                            f"{_span((r.sent_at for r in rows), validated)}")
    emails = {r.email for r in rows}
    report.duplicates = sum(count - 1 for address, count in by_recipient.items() if address in emails and count > 1)
    strangers = sum(count for address, count in by_recipient.items()
                    if address.endswith("@" + domain) and address not in emails)
    if strangers:
        report.stuck.append(f"{strangers} message(s) to {domain} addresses of no notice")
    for what, count in (("claimed («envoi en cours»)", sum(r.claimed for r in rows)),
                        ("with a request pending", sum(r.pending is not None for r in rows)),
                        ("with a send left «sending»", sum(any(s[0] == "sending" for s in r.sends) for r in rows)),
                        ("still V", sum(r.status == "V" for r in rows))):
        if count:
            report.stuck.append(f"{count} notice(s) {what}")
    engines = await _bounded(rows, lambda r: _notice_workflow(client, r.workflow_id))
    wrong = [(r.workflow_id, e) for r, e in zip(rows, engines, strict=True)
             if not isinstance(e, tuple) or e[0] != "RUNNING" or e[1] != LABELS.get(r.status) or e[2]]
    if wrong:
        report.stuck.append(f"{len(wrong)} notice workflow(s) not open at the status they applied, or busy "
                            f"(e.g. {wrong[0][0]}: {wrong[0][1]})")
    report.notes.append(f"notice workflows open at their status, no activity pending: {len(rows) - len(wrong)}/"
                        f"{len(rows)} (they stay open until 90 days after the due date)")
    launcher = await workflow_status(client, f"avis-run-{slug}-{run_id}")
    if launcher != WorkflowExecutionStatus.COMPLETED:
        report.stuck.append(f"workflow avis-run-{slug}-{run_id} : {launcher.name if launcher else 'not found'}")
    robot = await workflow_status(client, f"avis-robot-{slug}")
    if robot != WorkflowExecutionStatus.RUNNING:
        report.stuck.append(f"workflow avis-robot-{slug} : {robot.name if robot else 'not found'}")
    from core.db import session_scope

    with session_scope() as session:
        settings = session.get(RobotSettings, organisation_id)
        state = (settings.state, settings.paused, settings.sent_today, settings.last_error) if settings else None
    if state is None:
        report.stuck.append("the robot has no settings")
    else:
        report.notes.append(f"robot: state {state[0]}, sent today {state[2]}, last error {state[3] or 'none'}")
        if state[0] == "error_wait" or state[1]:
            report.stuck.append(f"the robot is left {'paused' if state[1] else 'waiting after an error'}")
    return report
