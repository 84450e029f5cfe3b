"""Transitions and the bridge to Temporal: record an action, start a request's launcher and a mandate's workflow.

Every channel (mail link, extranet, requester UI, partner API) calls `record_action` in its transaction: the
status and the workflow's signal are written together or not at all, an invalid transition is refused with a
French message (`TransitionRefused`, nothing changed), and the answer never waits for Temporal.
"""

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.db import session_scope, table, utcnow
from core.logging import log
from core.settings import Settings, get_settings
from core.signals import PendingSignal, queue_signal
from core.temporal import search_attributes
from services.removals.models import Mandate
from services.removals.service import queries
from services.removals.service.queries import PARIS, MandateRow
from workflows.removal import (
    STATUS_LABELS,
    TRANSITIONS,
    MandateAction,
    Recorded,
    RemovalInput,
    RemovalRequestWorkflow,
    RemovalWorkflow,
    RequestInput,
    form_problem,
    refusal,
)


class TransitionRefused(Exception):
    """The action is not possible now; the message says why, in French."""

    def __init__(self, message: str, row: MandateRow | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


REFUSED_CLOSED = "Action refusée : cette demande de dépose est close."
SIGNAL_KIND = "removal-mandate"


def request_workflow_id(request_id: int) -> str:
    return f"removal-request-{request_id}"


def mandate_workflow_id(request_no: int, vin: str) -> str:
    return f"removal-{request_no}-vin-{vin}"


def end_of_day(day: date) -> datetime:
    """Midnight ending `day` in France: "not Effectuée by the desired date" means by then."""
    return datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)


def mandate_input(row: MandateRow, settings: Settings) -> RemovalInput:
    """The workflow's input, from the read model only: whoever starts it (launcher or the relay, for a click that
    came first) gives the same timers."""
    return RemovalInput(
        mandate_id=row.id,
        reminder_days=settings.removal_reminder_days,
        alert_at=end_of_day(row.desired_date), mail_task_queue=settings.mail_task_queue,
    )


async def start_mandate(client: Client, row: MandateRow, settings: Settings, *, task_queue: str,
                        mail_task_queue: str, signal: tuple[str, object] | None = None) -> bool:
    """Start the mandate's workflow unless it exists (running or closed); True if this call started it.
    With `signal`, signal-with-start: a running workflow gets the signal, a closed one raises
    WorkflowAlreadyStartedError."""
    inp = mandate_input(row, settings)
    inp.mail_task_queue = mail_task_queue
    extra: dict[str, Any] = {"start_signal": signal[0], "start_signal_args": [signal[1]]} if signal else {}
    try:
        await client.start_workflow(
            RemovalWorkflow.run, inp, id=row.workflow_id, task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes(
                RelaisOrganisation=row.requester_slug, RelaisDomain="removals", RelaisCampaign=str(row.request_no),
                RelaisVehicle=row.vin, RelaisPerson=row.deposer_code, RelaisFamily="mandat",
                RelaisStatus=STATUS_LABELS[row.status]),
            static_summary=f"Dépose {row.vin} — demande #{row.request_no} ({row.requester_name} → "
                           f"{row.deposer_name})",
            **extra,
        )
    except WorkflowAlreadyStartedError:
        if signal:
            raise
        return False  # closed: REJECT_DUPLICATE keeps a finished mandate finished
    return True


async def start_request(client: Client, settings: Settings, *, request_id: int, number: int, slug: str,
                        requester_name: str) -> None:
    """Start (or find) the request's launcher: its id is the request's, so a second "Confirmer" starts nothing."""
    await client.start_workflow(
        RemovalRequestWorkflow.run, RequestInput(request_id, settings.task_queue, settings.mail_task_queue),
        id=request_workflow_id(request_id), task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(RelaisOrganisation=slug, RelaisDomain="removals",
                                            RelaisCampaign=str(number), RelaisFamily="demande",
                                            RelaisStatus="Prévenu"),
        static_summary=f"Demande de dépose #{number} ({requester_name})",
    )


def record_action(session: Session, settings: Settings, mandate_id: int, action: str, payload: MandateAction, *,
                  task_queue: str | None = None) -> MandateRow:
    """Decide and record `action` in the caller's transaction: the new status (only from an allowed one: the
    conditional UPDATE takes the row lock, so two concurrent actions cannot both pass) and the signal that tells
    the workflow, which then writes and sends the mails of the change. Returns the updated row; raises
    TransitionRefused (the caller rolls back) if the status does not allow it."""
    if problem := form_problem(action, payload, now_utc()):  # the channels check first, to show their form again
        raise TransitionRefused(problem)
    sources, target = TRANSITIONS[action]
    values: dict[str, object] = {"status": target, "updated_at": utcnow()}
    if action == "refuse":
        values["reason"] = payload.reason.strip()
    if action == "confirm":
        values.update(removal_date=payload.removal_date, box_digits=payload.box_digits.strip(),
                      technician=payload.technician.strip())
    mandates = table(Mandate)
    changed = session.execute(update(mandates).where(mandates.c.id == mandate_id, mandates.c.status.in_(sources))
                              .values(**values).returning(mandates.c.id)).first()
    if changed is None:
        current = session.scalar(select(Mandate.status).where(Mandate.id == mandate_id))
        raise TransitionRefused(refusal(action, current or "nouvelle") or REFUSED_CLOSED)
    row = queries.by_id(session, mandate_id)
    assert row is not None
    queue_signal(session, organisation_id=row.organisation_id, workflow_id=row.workflow_id, signal="recorded",
                 payload=asdict(Recorded(target)), task_queue=task_queue or settings.task_queue, kind=SIGNAL_KIND)
    log.info("removal.recorded", mandate_id=mandate_id, action=action, status=target, by=payload.by)
    return row


async def start_with_signal(client: Client, signal: PendingSignal, mail_task_queue: str) -> None:
    """The relay's starter: a click arrived before the launcher started this vehicle's workflow."""
    with session_scope() as session:
        row = queries.by_workflow_id(session, signal.workflow_id)
    if row is None:
        raise WorkflowAlreadyStartedError(signal.workflow_id, RemovalWorkflow.__name__)  # gone: nothing to tell
    await start_mandate(client, row, get_settings(), task_queue=signal.task_queue, mail_task_queue=mail_task_queue,
                        signal=(signal.signal, signal.payload))


def now_utc() -> datetime:
    return datetime.now(UTC)


def payload_from_form(by: str, form: Mapping[str, str]) -> MandateAction:
    """The refusal's reason or the removal report, from a submitted form (link page or extranet)."""
    removal_date = parse_removal_date(form.get("removal_date", ""))
    return MandateAction(by=by, reason=form.get("reason", "").strip(), removal_date=removal_date,
                         box_digits=form.get("box_digits", "").strip(), technician=form.get("technician", "").strip())


def now_paris() -> datetime:
    return datetime.now(PARIS).replace(second=0, microsecond=0)


def parse_removal_date(value: str) -> datetime | None:
    """The form's "Date de dépose" (datetime-local, or jj/mm/aaaa hh:mm), as French local time."""
    value = value.strip()
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=PARIS)
        except ValueError:
            continue
    return None
