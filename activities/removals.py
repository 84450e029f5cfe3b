"""Removals activities: notify deposers (one grouped mail each; Prévenu once the server accepted it) and then the
requester, start the mandates' workflows, remind, alert, the "dépose informatique" that closes the subscription,
and the mails of each recorded status change (the status itself is written by the services, in the transaction
of the action: `process.record_action`)."""

import asyncio
import contextlib
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from core import outbox
from core.db import session_scope
from core.settings import Settings
from core.temporal import start_workflow
from services.removals.models import MailClaim, Mandate, TrackedVehicle
from services.removals.service import mails, process, queries
from services.removals.service.queries import MandateRow
from workflows.data.removals import TERMINAL, DeposerNotice, NotifiedDeposer, StartedPage, StartPage, StatusMails

PARALLEL_STARTS = 32


class RemovalActivities:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client

    def _enqueue(self, organisation_id: int, messages: list[outbox.NewMessage]) -> list[int]:
        with session_scope() as session:
            ids = outbox.enqueue_many(session, settings=self.settings, organisation_id=organisation_id,
                                      messages=messages)
        return [ids[m.key] for m in messages]

    @activity.defn(name="notify_removal_deposers")
    def notify_removal_deposers(self, request_id: int) -> list[DeposerNotice]:
        """ONE mail per deposer listing all its vehicles, written in the outbox; its mandates stay Nouvelle until
        the server accepts it (`record_removal_notified`).

        Idempotent: a retry finds the outbox rows by key (the mails are not written twice)."""
        with session_scope() as session:
            groups = _by_deposer(queries.of_request(session, request_id))
            if not groups:
                raise ApplicationError(f"Demande {request_id} introuvable ou vide", non_retryable=True)
            messages = [mails.deposer_notification(group, self.settings) for group in groups.values()]
            ids = outbox.enqueue_many(session, settings=self.settings,
                                      organisation_id=next(iter(groups.values()))[0].organisation_id,
                                      messages=messages)
            return [DeposerNotice(deposer_id, ids[m.key]) for deposer_id, m in zip(groups, messages, strict=True)]

    @activity.defn(name="record_removal_notified")
    def record_removal_notified(self, notified: NotifiedDeposer) -> int:
        """Nouvelle → Prévenu for the deposer's vehicles of the request, its mail being accepted by the server."""
        with session_scope() as session:
            return process.mark_notified(session, request_id=notified.request_id, deposer_id=notified.deposer_id)

    @activity.defn(name="notify_removal_requester")
    def notify_removal_requester(self, request_id: int) -> int:
        """Once every deposer's mail is through (or given up): one mail to the requester saying who was told and
        whose mail could not be sent. Idempotent (outbox key)."""
        with session_scope() as session:
            groups = _by_deposer(queries.of_request(session, request_id))
            if not groups:
                raise ApplicationError(f"Demande {request_id} introuvable ou vide", non_retryable=True)
            states = process.notification_states(session, request_id=request_id)
            told = [g for d, g in groups.items() if states.get(d, ("", ""))[0] == "sent"]
            failed = [(g, states.get(d, ("", ""))[1] or "pas de réponse du serveur")
                      for d, g in groups.items() if states.get(d, ("", ""))[0] != "sent"]
            message = mails.requester_received(told, self.settings, failed)
            first = next(iter(groups.values()))[0]
            return outbox.enqueue_many(session, settings=self.settings, organisation_id=first.organisation_id,
                                       messages=[message])[message.key]

    @activity.defn(name="start_removal_workflows")
    async def start_removal_workflows(self, page: StartPage) -> StartedPage:
        """Start the next page of the request's mandate workflows (an existing one counts as started)."""
        rows = await asyncio.to_thread(self._page, page)
        gate = asyncio.Semaphore(PARALLEL_STARTS)

        async def start(row: MandateRow) -> None:
            async with gate:
                spec = process.mandate_start(row, self.settings, task_queue=page.task_queue,
                                             mail_task_queue=page.mail_task_queue)
                with contextlib.suppress(WorkflowAlreadyStartedError):  # closed already: a finished mandate stays so
                    await start_workflow(self.client, spec)
                activity.heartbeat()

        await asyncio.gather(*(start(row) for row in rows))
        return StartedPage(rows[-1].id if rows else page.after_id, len(rows))

    def _page(self, page: StartPage) -> list[MandateRow]:
        stmt = select(Mandate).where(Mandate.request_id == page.request_id, Mandate.id > page.after_id)
        with session_scope() as session:
            stmt = queries.with_details(stmt).order_by(None).order_by(Mandate.id).limit(page.limit)
            return queries.rows(session, stmt)

    @activity.defn(name="queue_removal_mails")
    def queue_removal_mails(self, change: StatusMails) -> list[int]:
        """The mails of a recorded status: the requester's alert (Effectuée's waits for the "dépose informatique"),
        and the deposer's notice of a cancellation. Idempotent: a retry finds the outbox rows by key."""
        with session_scope() as session:
            row = queries.by_id(session, change.mandate_id)
            if row is None:
                raise ApplicationError(f"Mandat {change.mandate_id} introuvable", non_retryable=True)
            messages = []
            if change.status in ("acceptee", "refusee", "annulee"):
                messages.append(mails.requester_alert(row, change.status, self.settings))
            if change.status == "annulee" and _was_told(session, change.mandate_id):
                messages.append(mails.deposer_cancelled(row))  # never told of it: nothing to call off
            ids = outbox.enqueue_many(session, settings=self.settings, organisation_id=row.organisation_id,
                                      messages=messages)
            return [ids[m.key] for m in messages]

    @activity.defn(name="close_removal_subscription")
    def close_removal_subscription(self, mandate_id: int) -> int:
        """"Dépose informatique": close the vehicle's subscription with the removal's date and box digits.

        Idempotent: a closed subscription stays as it was closed; the requester's mail is written once."""
        with session_scope() as session:
            mandate = session.get(Mandate, mandate_id)
            if mandate is None or mandate.status != "effectuee":
                raise ApplicationError(f"Mandat {mandate_id} non effectué", non_retryable=True)
            session.execute(update(TrackedVehicle).where(TrackedVehicle.id == mandate.vehicle_id,
                                                         TrackedVehicle.subscription_status == "active")
                            .values(subscription_status="closed", closed_on=mandate.removal_date,
                                    box_digits=mandate.box_digits))
            row = queries.by_id(session, mandate_id)
            assert row is not None
        return self._enqueue(row.organisation_id, [mails.requester_alert(row, "effectuee", self.settings)])[0]

    @activity.defn(name="remind_removal_deposer")
    def remind_removal_deposer(self, mandate_id: int) -> int:
        """One reminder per request and deposer, listing its vehicles still Prévenu; sent by the mandate that
        claims it (0: nothing to send from this one)."""
        with session_scope() as session:
            mandate = session.get(Mandate, mandate_id)
            if mandate is None or mandate.status != "prevenu":
                return 0
            key = f"removal-reminder-{mandate.request_id}-deposer-{mandate.deposer_id}"
            if not _claim(session, key, mandate_id):
                return 0
            rows = queries.of_request(session, mandate.request_id, deposer_id=mandate.deposer_id,
                                      statuses=("prevenu",))
            message = mails.deposer_notification(rows, self.settings, reminder=True)
            return outbox.enqueue_many(session, settings=self.settings, organisation_id=mandate.organisation_id,
                                       messages=[message])[message.key]

    @activity.defn(name="alert_removal_overdue")
    def alert_removal_overdue(self, mandate_id: int) -> int:
        """One alert per request and desired date, listing its vehicles not Effectuée; sent by the mandate that
        claims it (0: nothing to send from this one)."""
        with session_scope() as session:
            mandate = session.get(Mandate, mandate_id)
            if mandate is None or mandate.status in TERMINAL or mandate.desired_date is None:
                return 0
            if not _claim(session, f"removal-overdue-{mandate.request_id}-{mandate.desired_date}", mandate_id):
                return 0
            rows = [r for r in queries.of_request(session, mandate.request_id, statuses=("prevenu", "acceptee"))
                    if r.desired_date == mandate.desired_date]
            message = mails.requester_overdue(rows, self.settings)
            return outbox.enqueue_many(session, settings=self.settings, organisation_id=mandate.organisation_id,
                                       messages=[message])[message.key]


def _was_told(session: Session, mandate_id: int) -> bool:
    return session.scalar(select(Mandate.notified_at).where(Mandate.id == mandate_id)) is not None


def _by_deposer(rows: list[MandateRow]) -> dict[int, list[MandateRow]]:
    """A request's mandates by deposer, in the order of their rows (as each deposer's mail lists them)."""
    groups: dict[int, list[MandateRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.id):
        groups[row.deposer_id].append(row)
    return dict(groups)


def _claim(session: Session, key: str, mandate_id: int) -> bool:
    """True if this mandate sends the grouped mail `key`: the first claim wins (a concurrent one waits for it
    on the primary key, then sees it); a retried activity finds its own claim."""
    session.execute(insert(MailClaim).values(key=key, mandate_id=mandate_id).on_conflict_do_nothing())
    return session.scalar(select(MailClaim.mandate_id).where(MailClaim.key == key)) == mandate_id
