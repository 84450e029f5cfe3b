"""Removals: one workflow per vehicle mandate, and the request's launcher that notifies deposers and starts them.

A mandate is Nouvelle until the SMTP server accepted its deposer's mail of the request, then Prévenu; then
Acceptée, Refusée (with a reason), Effectuée ("Signaler la dépose") or Annulée (by the requester). Every channel
decides a transition against the read model under a row lock and records it in one transaction
(`services.removals.service.process`, with the rules of `services.removals.service.rules`), so an invalid one is
refused at once and changes nothing; the workflow is then told by the `recorded` signal, writes and sends the
mails of the change, and runs what follows ("dépose informatique"). Timers: a reminder to the deposer while still
Prévenu, an alert to the requester if not Effectuée by the desired date.
"""

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.common import DB_RETRY, send_mail
from workflows.data.removals import (
    RECORDED,
    REMOVAL_MANDATE,
    REMOVAL_REQUEST,
    STATUS_RANK,
    TERMINAL,
    DeposerNotice,
    NotifiedDeposer,
    Recorded,
    RemovalInput,
    RequestInput,
    StartPage,
    StatusMails,
)

with workflow.unsafe.imports_passed_through():
    from activities.removals import RemovalActivities
    from core.temporal import SA_STATUS

DB_TIMEOUT = timedelta(minutes=2)
LOCAL_TIMEOUT = timedelta(seconds=30)
LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
MAIL_HEAD_START = timedelta(seconds=30)
START_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))


@dataclass
class _Timers:
    reminded: bool
    reminder_at: datetime
    alerted: bool = False


# Unsandboxed: thousands of these run per request, and the sandbox's per-run cost (a fresh import of this module on
# every start and every cache miss) dominated the worker's CPU. This module stays pure: no I/O, no clock but
# workflow.now(), activities imported by name only.
@workflow.defn(name=REMOVAL_MANDATE, sandboxed=False)
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
            deadlines = [inp.alert_at] if inp.alert_at is not None and not timers.alerted else []
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
            outbox_id = await workflow.execute_activity_method(
                RemovalActivities.close_removal_subscription, inp.mandate_id, start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY)
            await send_mail(outbox_id, inp.mail_task_queue)
        return self.status

    async def _send_pending(self, inp: RemovalInput) -> None:
        """The mails of the statuses recorded since the last look (written once each: outbox keys), then send."""
        while self.to_announce:
            status = self.to_announce.pop(0)
            self.outbox.extend(await workflow.execute_local_activity_method(
                RemovalActivities.queue_removal_mails, StatusMails(inp.mandate_id, status),
                start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=LOCAL_RETRY))
        while self.outbox:
            await send_mail(self.outbox.pop(0), inp.mail_task_queue)

    async def _on_time(self, inp: RemovalInput, timers: _Timers) -> None:
        now = workflow.now()
        if not timers.reminded and now >= timers.reminder_at:
            timers.reminded = True
            if self.status == "prevenu":
                self.outbox.append(await workflow.execute_activity_method(
                    RemovalActivities.remind_removal_deposer, inp.mandate_id, start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY))
        if inp.alert_at is not None and not timers.alerted and now >= inp.alert_at:
            timers.alerted = True
            if self.status not in TERMINAL:
                self.outbox.append(await workflow.execute_activity_method(
                    RemovalActivities.alert_removal_overdue, inp.mandate_id, start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY))
        self.outbox = [i for i in self.outbox if i]

    @workflow.signal(name=RECORDED)
    def recorded(self, change: Recorded) -> None:
        """Idempotent and order-proof: a status never moves back, and each one is announced once."""
        if STATUS_RANK[change.status] > STATUS_RANK[self.status]:
            self.status = change.status
            self.to_announce.append(change.status)
            if change.label:
                workflow.upsert_search_attributes([SA_STATUS.value_set(change.label)])

    @workflow.query
    def current_status(self) -> str:
        return self.status


@workflow.defn(name=REMOVAL_REQUEST)
class RemovalRequestWorkflow:
    """Id `removal-request-{request id}`: one grouped mail per deposer (its vehicles Prévenu once the server
    accepted it), then the vehicles' workflows, then the requester's mail saying who was told."""

    @workflow.run
    async def run(self, inp: RequestInput) -> int:
        notices = await workflow.execute_activity_method(
            RemovalActivities.notify_removal_deposers, inp.request_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        told = asyncio.gather(*(self._tell(inp, notice) for notice in notices))
        # The deposers' mails first: thousands of starts would slow them down. A bounded head start, so that an
        # SMTP outage delays no mandate's timers (a click before its workflow exists starts it on demand).
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(told.done, timeout=MAIL_HEAD_START)
        total, after_id = 0, 0
        while True:
            page = await workflow.execute_activity_method(
                RemovalActivities.start_removal_workflows,
                StartPage(inp.request_id, inp.task_queue, inp.mail_task_queue, after_id, inp.page_size),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1), retry_policy=START_RETRY)
            total += page.count
            if page.count < inp.page_size:
                break
            after_id = page.last_id
        await told
        received = await workflow.execute_activity_method(
            RemovalActivities.notify_removal_requester, inp.request_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        await send_mail(received, inp.mail_task_queue)
        return total

    async def _tell(self, inp: RequestInput, notice: DeposerNotice) -> None:
        """Send one deposer's mail; once the server accepted it, its vehicles are Prévenu. Refused (5xx) or given
        up after a day of 4xx: they stay Nouvelle, and the requester's mail says so."""
        try:
            sent = await send_mail(notice.outbox_id, inp.mail_task_queue)
        except ActivityError:
            return
        if sent.status == "sent":
            await workflow.execute_activity_method(
                RemovalActivities.record_removal_notified, NotifiedDeposer(inp.request_id, notice.deposer_id),
                start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
