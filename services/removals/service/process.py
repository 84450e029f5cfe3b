"""The bridge to Temporal: start a request's launcher and a mandate's workflow, apply a transition.

Every channel (mail link, extranet, requester UI, partner API) calls `apply_action`: a Temporal update whose
validator refuses an invalid transition with a French message (`TransitionRefused`, nothing changed).
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.settings import Settings
from core.temporal import search_attributes
from services.removals.service.queries import MandateRow
from workflows.removal import (
    STATUS_LABELS,
    TERMINAL,
    MandateAction,
    RemovalInput,
    RemovalRequestWorkflow,
    RemovalWorkflow,
    RequestInput,
    refusal,
)

PARIS = ZoneInfo("Europe/Paris")
RPC_TIMEOUT = timedelta(seconds=15)


class TransitionRefused(Exception):
    """The action is not possible now; the message says why, in French."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineUnavailable(Exception):
    """Temporal did not answer in time: nothing is known to have changed, the user may retry."""

    message = "Le moteur de workflows ne répond pas : réessayez dans un instant."


def request_workflow_id(request_id: int) -> str:
    return f"removal-request-{request_id}"


def mandate_workflow_id(request_no: int, vin: str) -> str:
    return f"removal-{request_no}-vin-{vin}"


def end_of_day(day: date) -> datetime:
    """Midnight ending `day` in France: "not Effectuée by the desired date" means by then."""
    return datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)


def mandate_input(row: MandateRow, settings: Settings) -> RemovalInput:
    """The workflow's input, from the read model only: whoever starts it (launcher or a late action) gives the
    same timers."""
    return RemovalInput(
        mandate_id=row.id, status=row.status,
        reminder_days=settings.removal_reminder_days,
        alert_at=end_of_day(row.desired_date), mail_task_queue=settings.mail_task_queue,
    )


async def start_mandate(client: Client, row: MandateRow, settings: Settings, *, task_queue: str,
                        mail_task_queue: str) -> bool:
    """Start the mandate's workflow unless it exists (running or closed); True if this call started it."""
    inp = mandate_input(row, settings)
    inp.mail_task_queue = mail_task_queue
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
        )
    except WorkflowAlreadyStartedError:
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


async def apply_action(client: Client, settings: Settings, row: MandateRow, action: str, payload: MandateAction,
                       *, update_id: str | None = None) -> str:
    """Run the transition; returns the new status label. `update_id` dedupes a retried request (link token id)."""
    handle = client.get_workflow_handle(row.workflow_id)
    for attempt in (1, 2):
        try:
            result: str = await handle.execute_update(action, payload, id=update_id, result_type=str,
                                                      rpc_timeout=RPC_TIMEOUT)
            return result
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise TransitionRefused(cause.message if isinstance(cause, ApplicationError) else str(exc)) from exc
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            raise EngineUnavailable from exc
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or attempt == 2:
                if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                    raise EngineUnavailable from exc
                raise
            # Not running: finished (the read model says how), or not started yet by the launcher.
            problem = refusal(action, row.status)
            if problem or row.status in TERMINAL:
                raise TransitionRefused(problem or "Action refusée : cette demande de dépose est close.") from exc
            if not await start_mandate(client, row, settings, task_queue=settings.task_queue,
                                       mail_task_queue=settings.mail_task_queue):
                raise TransitionRefused("Action refusée : cette demande de dépose est close.") from exc
    raise AssertionError("unreachable")


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
