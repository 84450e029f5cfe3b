"""Removals: one workflow per vehicle mandate, and the request's launcher that notifies deposers and starts them.

A mandate is Prévenu once its deposer got the request's mail; then Acceptée, Refusée (with a reason),
Effectuée ("Signaler la dépose") or Annulée (by the requester). Every channel decides a transition against the
read model under a row lock and records it in one transaction (`services.removals.service.process`, the rules are
`TRANSITIONS` below), so an invalid one is refused at once and changes nothing; the workflow is then told by the
`recorded` signal, writes and sends the mails of the change, and runs what follows ("dépose informatique").
Timers: a reminder to the deposer while still Prévenu, an alert to the requester if not Effectuée by the desired
date.
"""

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import send_mail

with workflow.unsafe.imports_passed_through():
    from core.temporal import SA_STATUS

STATUS_LABELS = {"nouvelle": "Nouvelle", "prevenu": "Prévenu", "acceptee": "Acceptée", "refusee": "Refusée",
                 "effectuee": "Effectuée", "annulee": "Annulée"}
TERMINAL = frozenset({"refusee", "effectuee", "annulee"})
# Statuses only move forward: a late or repeated signal never takes a mandate back.
STATUS_RANK = {"nouvelle": 0, "prevenu": 1, "acceptee": 2, "refusee": 3, "effectuee": 3, "annulee": 3}
# action → (statuses it may start from, status it leads to): the one rule set for links, extranet, API and UI.
TRANSITIONS = {
    "accept": (frozenset({"prevenu"}), "acceptee"),
    "refuse": (frozenset({"prevenu", "acceptee"}), "refusee"),
    "confirm": (frozenset({"prevenu", "acceptee"}), "effectuee"),
    "cancel": (frozenset({"prevenu", "acceptee"}), "annulee"),
}
ACTION_VERBS = {"accept": "acceptée", "refuse": "refusée", "confirm": "signalée comme effectuée",
                "cancel": "annulée"}
BOX_DIGITS = re.compile(r"\d{7}")
DB_STEP = {"start_to_close_timeout": timedelta(minutes=2),
           "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))}
LOCAL_STEP = {"start_to_close_timeout": timedelta(seconds=30),
              "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                          maximum_interval=timedelta(seconds=30))}
MAIL_HEAD_START = timedelta(seconds=30)
START_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))


def allowed_actions(status: str) -> list[str]:
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]


def refusal(action: str, status: str) -> str | None:
    """Why `action` is impossible from `status` (French, for the person who tried), or None."""
    if status in TRANSITIONS[action][0]:
        return None
    if status == "nouvelle":
        return ("Action refusée : la demande de dépose n'a pas encore été transmise au mandataire "
                "(statut « Nouvelle »).")
    if status == TRANSITIONS[action][1]:
        return f"Action refusée : cette demande de dépose est déjà « {STATUS_LABELS[status]} »."
    return (f"Action refusée : la demande de dépose est « {STATUS_LABELS[status]} », elle ne peut plus être "
            f"{ACTION_VERBS[action]}.")


@dataclass
class MandateAction:
    """Who acts and, for a refusal or a removal, the form's fields."""

    by: str
    reason: str = ""
    removal_date: datetime | None = None
    box_digits: str = ""
    technician: str = ""


def form_problem(action: str, payload: MandateAction, now: datetime) -> str | None:
    """The first missing or wrong field of a refusal or a removal report, or None."""
    if action == "refuse" and not payload.reason.strip():
        return "Le motif du refus est obligatoire."
    if action == "confirm":
        if payload.removal_date is None:
            return "La date de dépose est obligatoire."
        if payload.removal_date.tzinfo is None or payload.removal_date > now + timedelta(minutes=10):
            return "La date de dépose ne peut pas être dans le futur."
        if not BOX_DIGITS.fullmatch(payload.box_digits.strip()):
            return "Indiquez les 7 derniers chiffres du numéro de boîtier (7 chiffres)."
        if not payload.technician.strip():
            return "Le nom du technicien est obligatoire."
    return None


@dataclass
class RemovalInput:
    mandate_id: int
    reminder_days: int  # remind the deposer if still Prévenu this many days after the start
    alert_at: datetime  # the end of the desired date: alert the requester if not Effectuée by then
    mail_task_queue: str


@dataclass
class Recorded:
    """Signal `recorded`: a channel wrote this status in the read model (`process.record_action`)."""

    status: str


@dataclass
class StatusMails:
    mandate_id: int
    status: str


@dataclass
class _Timers:
    reminded: bool
    reminder_at: datetime
    alerted: bool = False


# Unsandboxed: thousands of these run per request, and the sandbox's per-run cost (a fresh import of this module on
# every start and every cache miss) dominated the worker's CPU. This module stays pure: no I/O, no clock but
# workflow.now(), activities imported by name only.
@workflow.defn(sandboxed=False)
class RemovalWorkflow:
    """Id `removal-{request number}-vin-{VIN}`: a double start finds the running one."""

    @workflow.init
    def __init__(self, inp: RemovalInput) -> None:
        # Set before any handler runs: a signal may arrive in the very first workflow task.
        self.mandate_id = inp.mandate_id
        # Always Prévenu, whenever it starts: what happened since reaches it as `recorded` signals (the relay
        # delivers every one, starting the workflow if needed), each announced once by its mails.
        self.status = "prevenu"
        self.outbox: list[int] = []
        self.to_announce: list[str] = []  # statuses recorded since the last look, whose mails are still to write

    @workflow.run
    async def run(self, inp: RemovalInput) -> str:
        timers = _Timers(reminded=False,
                         reminder_at=workflow.info().workflow_start_time + timedelta(days=inp.reminder_days))
        while True:
            await self._send_pending(inp)
            if self.status in TERMINAL:
                break
            deadlines = [inp.alert_at] if not timers.alerted else []
            if not timers.reminded:
                deadlines.append(timers.reminder_at)
            # Always a timeout (never None): a year when no timer is left, then look again.
            wake_at = min(deadlines, default=workflow.now() + timedelta(days=365))
            timeout = max(wake_at - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(lambda: bool(self.to_announce) or self.status in TERMINAL,
                                              timeout=timeout)
            except TimeoutError:
                await self._on_time(inp, timers)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._send_pending(inp)
        if self.status == "effectuee":
            # "Dépose informatique": close the subscription (idempotent), then tell the requester.
            outbox_id = await workflow.execute_activity("close_removal_subscription", inp.mandate_id,
                                                        result_type=int, **DB_STEP)  # type: ignore[call-overload]
            await send_mail(outbox_id, inp.mail_task_queue)
        return self.status

    async def _send_pending(self, inp: RemovalInput) -> None:
        """The mails of the statuses recorded since the last look (written once each: outbox keys), then send."""
        while self.to_announce:
            status = self.to_announce.pop(0)
            self.outbox.extend(await workflow.execute_local_activity(
                "queue_removal_mails", StatusMails(inp.mandate_id, status), result_type=list[int],
                **LOCAL_STEP))  # type: ignore[call-overload]
        while self.outbox:
            await send_mail(self.outbox.pop(0), inp.mail_task_queue)

    async def _on_time(self, inp: RemovalInput, timers: _Timers) -> None:
        now = workflow.now()
        if not timers.reminded and now >= timers.reminder_at:
            timers.reminded = True
            if self.status == "prevenu":
                self.outbox.append(await workflow.execute_activity(
                    "remind_removal_deposer", inp.mandate_id, result_type=int, **DB_STEP))  # type: ignore[call-overload]
        if not timers.alerted and now >= inp.alert_at:
            timers.alerted = True
            if self.status not in TERMINAL:
                self.outbox.append(await workflow.execute_activity(
                    "alert_removal_overdue", inp.mandate_id, result_type=int, **DB_STEP))  # type: ignore[call-overload]
        self.outbox = [i for i in self.outbox if i]

    @workflow.signal
    def recorded(self, change: Recorded) -> None:
        """Idempotent and order-proof: a status never moves back, and each one is announced once."""
        if STATUS_RANK[change.status] > STATUS_RANK[self.status]:
            self.status = change.status
            self.to_announce.append(change.status)
            workflow.upsert_search_attributes([SA_STATUS.value_set(STATUS_LABELS[change.status])])

    @workflow.query
    def current_status(self) -> str:
        return self.status


@dataclass
class RequestInput:
    request_id: int
    task_queue: str
    mail_task_queue: str
    page_size: int = 500


@dataclass
class StartPage:
    request_id: int
    task_queue: str
    mail_task_queue: str
    after_id: int
    limit: int


@dataclass
class StartedPage:
    last_id: int = 0
    count: int = 0
    started: list[str] = field(default_factory=list)


@workflow.defn
class RemovalRequestWorkflow:
    """Id `removal-request-{request id}`: one grouped mail per deposer, then the vehicles' workflows."""

    @workflow.run
    async def run(self, inp: RequestInput) -> int:
        outbox_ids = await workflow.execute_activity("notify_removal_deposers", inp.request_id,
                                                     result_type=list[int], **DB_STEP)  # type: ignore[call-overload]
        mails = asyncio.gather(*(send_mail(i, inp.mail_task_queue) for i in outbox_ids))
        # The deposers' mails first: thousands of starts would slow them down. A bounded head start, so that an
        # SMTP outage delays no mandate's timers (a click before its workflow exists starts it on demand).
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(mails.done, timeout=MAIL_HEAD_START)
        total, after_id = 0, 0
        while True:
            page = await workflow.execute_activity(
                "start_removal_workflows",
                StartPage(inp.request_id, inp.task_queue, inp.mail_task_queue, after_id, inp.page_size),
                result_type=StartedPage, start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1), retry_policy=START_RETRY)
            total += page.count
            if page.count < inp.page_size:
                break
            after_id = page.last_id
        await mails
        return total
