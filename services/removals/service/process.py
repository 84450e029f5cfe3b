"""Transitions and the bridge to Temporal: record an action, start a request's launcher and a mandate's workflow.

Every channel (mail link, extranet, requester UI, partner API) calls `record_action` in its transaction: the
status and the workflow's signal are written together or not at all, an invalid transition is refused with a
French message (`TransitionRefused`, nothing changed), and the answer never waits for Temporal.
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, cast, exists, select, update
from sqlalchemy.orm import Session

from core.db import table, utcnow
from core.logging import log
from core.models import Organisation, OutboxMessage, User
from core.settings import Settings
from core.signals import queue_signal, queue_start
from core.temporal import StartSpec, start_spec
from services.removals.models import Mandate, RemovalRequest
from services.removals.service import mails, queries
from services.removals.service.queries import PARIS, MandateRow
from services.removals.service.rules import STATUS_LABELS, TRANSITIONS, MandateAction, form_problem, refusal
from workflows.data.removals import (
    RECORDED,
    REMOVAL_MANDATE,
    REMOVAL_REQUEST,
    Recorded,
    RemovalInput,
    RequestInput,
)


class TransitionRefused(Exception):
    """The action is not possible now; the message says why, in French."""

    def __init__(self, message: str, row: MandateRow | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


REFUSED_CLOSED = "Action refusée : cette demande de dépose est close."


def request_workflow_id(request_id: int) -> str:
    return f"removal-request-{request_id}"


def mandate_workflow_id(request_no: int, vin: str) -> str:
    return f"removal-{request_no}-vin-{vin}"


def end_of_day(day: date) -> datetime:
    """Midnight ending `day` in France: "not Effectuée by the desired date" means by then."""
    return datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)


def mandate_input(row: MandateRow, settings: Settings, *, mail_task_queue: str | None = None) -> RemovalInput:
    """The workflow's input, from the read model only: whoever starts it (the launcher, or the relay for a click that
    came first) gives the same timers."""
    return RemovalInput(mandate_id=row.id, reminder_days=settings.removal_reminder_days,
                        alert_at=end_of_day(row.desired_date) if row.desired_date else None,
                        mail_task_queue=mail_task_queue or settings.mail_task_queue)


def mandate_start(row: MandateRow, settings: Settings, *, task_queue: str | None = None,
                  mail_task_queue: str | None = None) -> StartSpec:
    """How the mandate's workflow starts (the launcher's page, or a click that reached it first)."""
    return start_spec(
        row.workflow_id, REMOVAL_MANDATE, mandate_input(row, settings, mail_task_queue=mail_task_queue),
        task_queue=task_queue or settings.task_queue,
        summary=f"Dépose {row.vin} — demande #{row.request_no} ({row.requester_name} → {row.deposer_name})",
        RelaisOrganisation=row.requester_slug, RelaisDomain="removals", RelaisCampaign=str(row.request_no),
        RelaisVehicle=row.vin, RelaisPerson=row.deposer_code, RelaisFamily="mandat",
        RelaisStatus=STATUS_LABELS["prevenu"])


def confirm_request(session: Session, settings: Settings, *, user: User, upload_id: str,
                    today: date) -> tuple[RemovalRequest, bool]:
    """«Confirmer»: create the request and its mandates (`upload.confirm`) and, in the same transaction, the start
    of its launcher, which notifies the deposers once this commits. A second «Confirmer» starts nothing."""
    from services.removals.service import upload  # upload names mandates' workflows with this module's ids

    request, created = upload.confirm(session, user=user, upload_id=upload_id, today=today)
    if created:
        organisation = session.get(Organisation, user.organisation_id)
        assert organisation is not None
        queue_start(session, organisation_id=organisation.id, spec=start_spec(
            request_workflow_id(request.id), REMOVAL_REQUEST,
            RequestInput(request.id, settings.task_queue, settings.mail_task_queue), task_queue=settings.task_queue,
            summary=f"Demande de dépose #{request.number} ({organisation.name})", RelaisOrganisation=organisation.slug,
            RelaisDomain="removals", RelaisCampaign=str(request.number), RelaisFamily="demande",
            RelaisStatus=STATUS_LABELS["prevenu"]))
    return request, created


def record_action(session: Session, settings: Settings, mandate_id: int, action: str, payload: MandateAction, *,
                  task_queue: str | None = None, mail_task_queue: str | None = None) -> MandateRow:
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
    move = update(mandates).where(mandates.c.id == mandate_id, mandates.c.status.in_(sources)).values(**values)
    changed = session.execute(move.returning(mandates.c.id)).first()
    if changed is None and "nouvelle" not in sources and catch_up_notified(session, mandate_id):
        changed = session.execute(move.returning(mandates.c.id)).first()
    if changed is None:
        current = session.scalar(select(Mandate.status).where(Mandate.id == mandate_id))
        raise TransitionRefused(refusal(action, current or "nouvelle") or REFUSED_CLOSED)
    row = queries.by_id(session, mandate_id)
    assert row is not None
    # Signal-with-start: a click that comes before the launcher reached this vehicle starts its workflow.
    start = mandate_start(row, settings, task_queue=task_queue, mail_task_queue=mail_task_queue)
    queue_signal(session, organisation_id=row.organisation_id, workflow_id=row.workflow_id, signal=RECORDED,
                 payload=Recorded(target, STATUS_LABELS[target]), task_queue=start.task_queue, start=start)
    log.info("removal.recorded", mandate_id=mandate_id, action=action, status=target, by=payload.by)
    return row


def _notification_sent(mandates: Any) -> Any:
    """SQL: the request's mail to the mandate's deposer was accepted by the SMTP server."""
    return exists().where(OutboxMessage.key == "removal-notify-" + cast(mandates.c.request_id, String)
                          + "-deposer-" + cast(mandates.c.deposer_id, String), OutboxMessage.status == "sent")


def mark_notified(session: Session, *, request_id: int, deposer_id: int) -> int:
    """Nouvelle → Prévenu for a deposer's mandates of a request, once the server accepted its mail (checked here
    against the outbox, not taken on trust). Returns how many changed; idempotent."""
    mandates = table(Mandate)
    changed = session.execute(update(mandates).where(
        mandates.c.request_id == request_id, mandates.c.deposer_id == deposer_id, mandates.c.status == "nouvelle",
        _notification_sent(mandates)).values(status="prevenu", notified_at=utcnow()).returning(mandates.c.id))
    return len(changed.all())


def catch_up_notified(session: Session, mandate_id: int) -> bool:
    """A click can come between the server's acceptance of the mail and `mark_notified`: then Prévenu first
    (a fact already true, so a link's GET page may record it too). True if it changed."""
    mandates = table(Mandate)
    return session.execute(update(mandates).where(
        mandates.c.id == mandate_id, mandates.c.status == "nouvelle", _notification_sent(mandates))
        .values(status="prevenu", notified_at=utcnow()).returning(mandates.c.id)).first() is not None


def notification_states(session: Session, *, request_id: int) -> dict[int, tuple[str, str]]:
    """The request's mail to each deposer: deposer id → (outbox status, last SMTP reply)."""
    deposer_ids = session.scalars(select(Mandate.deposer_id).where(Mandate.request_id == request_id).distinct())
    keys = {mails.notification_key(request_id, d): d for d in deposer_ids}
    if not keys:
        return {}
    found = session.execute(select(OutboxMessage.key, OutboxMessage.status, OutboxMessage.last_reply)
                            .where(OutboxMessage.key.in_(keys)))
    return {keys[key]: (status, reply or "") for key, status, reply in found}


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
