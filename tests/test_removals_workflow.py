"""Removal mandates on the time-skipping server: grouped notification, every transition as an update (and the
refused ones changing nothing), the reminder and the desired-date alert on their simulated days, and the
"dépose informatique" run twice."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select, update
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.removals import RemovalActivities
from core.db import session_scope
from core.models import OutboxMessage
from core.settings import get_settings
from services.removals.models import Mandate, TrackedVehicle
from services.removals.service.process import PARIS
from tests.support.removals import (
    Deposer,
    Requester,
    create_request,
    line,
    links_of,
    make_deposer,
    make_requester,
    subject,
)
from tests.support.smtp import SmtpSink, body_text
from workflows.removal import MandateAction, RemovalRequestWorkflow, RemovalWorkflow, RequestInput


@pytest.fixture
async def cleanup(time_env: WorkflowEnvironment) -> AsyncIterator[list[str]]:
    """Terminate what a test leaves running: a workflow waiting on a dead task queue stops time skipping."""
    workflow_ids: list[str] = []
    yield workflow_ids
    for workflow_id in workflow_ids:
        with contextlib.suppress(RPCError):
            await time_env.client.get_workflow_handle(workflow_id).terminate("fin du test")


Launched = tuple[Requester, Deposer, Deposer, int, int]


@pytest.fixture
def launch(time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment,
           cleanup: list[str]) -> Callable[..., Awaitable[Launched]]:
    """`await launch(vehicles, split)`: a request notified on this test's task queues."""
    client, queue, mail_queue = time_worker

    async def run(vehicles: int, split: int, desired_in_days: int = 30) -> Launched:
        return await _launch(client, queue, mail_queue, time_env, cleanup, vehicles=vehicles, split=split,
                             desired_in_days=desired_in_days)

    return run


async def _launch(client: Client, queue: str, mail_queue: str, env: WorkflowEnvironment, cleanup: list[str], *,
                  vehicles: int, split: int, desired_in_days: int) -> Launched:
    """A request of `vehicles` vehicles, the first `split` for deposer A, the rest for B, launched and notified."""
    requester, a, b = make_requester(vehicles), make_deposer(), make_deposer()
    today = (await env.get_current_time()).astimezone(PARIS).date()  # the server's clock runs ahead of ours
    when = today + timedelta(days=desired_in_days)
    rows = [line(requester, vin, a if i < split else b, when=when) for i, vin in enumerate(requester.vins)]
    request_id, number = create_request(requester, rows, today=today)
    cleanup.extend(f"removal-{number}-vin-{vin}" for vin in requester.vins)
    with env.auto_time_skipping_disabled():  # the mandates' timers must not be skipped while we wait for this
        count = await client.execute_workflow(RemovalRequestWorkflow.run,
                                              RequestInput(request_id, queue, mail_queue),
                                              id=f"removal-request-{request_id}-{uuid4().hex[:6]}", task_queue=queue)
    assert count == vehicles
    return requester, a, b, request_id, number


def _handle(client: Client, number: int, vin: str) -> WorkflowHandle[RemovalWorkflow, str]:
    return client.get_workflow_handle_for(RemovalWorkflow.run, f"removal-{number}-vin-{vin}")


def _status(vin: str) -> str:
    with session_scope() as session:
        return session.scalars(select(Mandate.status).where(Mandate.vin == vin)).one()


def _reason(error: WorkflowUpdateFailedError) -> str:
    """The validator's French message."""
    assert isinstance(error.cause, ApplicationError)
    return error.cause.message


REMOVAL = MandateAction(by="Test", removal_date=datetime(2026, 1, 5, 10, 23, tzinfo=UTC), box_digits="4512345",
                        technician="Karim Benali")


async def test_one_mail_per_deposer_then_accept_and_removal_close_the_subscription(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    requester, a, b, _request_id, number = await launch(3, 2)
    [to_a], [to_b] = sink.to(a.email), sink.to(b.email)
    assert subject(to_a) == f"Demande de dépose #{number} de {requester.name} : 2 véhicule(s)"
    assert set(links_of(to_a).by_vin) == set(requester.vins[:2]) and links_of(to_a).accept_all
    assert set(links_of(to_b).by_vin) == {requester.vins[2]}
    assert all(set(urls) == {"accepter", "refuser", "signaler"} for urls in links_of(to_a).by_vin.values())
    [received] = sink.to(f"suivi@{requester.slug}.example")
    assert subject(received) == f"Prise en compte de votre demande de dépose #{number}"
    assert all(_status(vin) == "prevenu" for vin in requester.vins)

    vin = requester.vins[0]
    handle = _handle(client, number, vin)
    assert await handle.execute_update(RemovalWorkflow.accept, MandateAction(by="Test")) == "Acceptée"
    assert _status(vin) == "acceptee"  # written by the update itself: the read model is up to date at once
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(RemovalWorkflow.accept, MandateAction(by="Test"))
    assert _reason(refused.value) == "Action refusée : cette demande de dépose est déjà « Acceptée »."
    with pytest.raises(WorkflowUpdateFailedError) as bad_digits:
        await handle.execute_update(RemovalWorkflow.confirm, MandateAction(by="Test", removal_date=REMOVAL.removal_date,
                                                                           box_digits="12AB", technician="X"))
    assert "7 derniers chiffres" in _reason(bad_digits.value)
    assert _status(vin) == "acceptee"
    assert await handle.execute_update(RemovalWorkflow.confirm, REMOVAL) == "Effectuée"
    assert await handle.result() == "effectuee"
    with session_scope() as session:
        vehicle = session.scalars(select(TrackedVehicle).where(TrackedVehicle.vin == vin)).one()
        assert (vehicle.subscription_status, vehicle.box_digits, vehicle.closed_on) == (
            "closed", "4512345", REMOVAL.removal_date)
    subjects = [subject(m) for m in sink.to(f"suivi@{requester.slug}.example")]
    assert f"Acceptation de votre demande de dépose {vin}" in subjects and f"Dépose effectuée {vin}" in subjects
    accepted = next(m for m in sink.messages if subject(m) == f"Acceptation de votre demande de dépose {vin}")
    assert f"Le mandataire {a.name} a accepté la demande de dépose suivante" in body_text(accepted)
    assert f"VIN : {vin}" in body_text(accepted) and "Lieu : Chambery" in body_text(accepted)
    # A finished mandate refuses everything (the update reaches no running workflow).
    with pytest.raises(RPCError) as closed:  # the service layer maps it to the read model's refusal
        await handle.execute_update(RemovalWorkflow.cancel, MandateAction(by="Test"))
    assert closed.value.status == RPCStatusCode.NOT_FOUND


async def test_refusal_needs_a_reason_and_cancel_tells_the_deposer(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    requester, a, _b, _request_id, number = await launch(2, 2)
    refused_vin, cancelled_vin = requester.vins
    handle = _handle(client, number, refused_vin)
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await handle.execute_update(RemovalWorkflow.refuse, MandateAction(by="Test", reason="  "))
    assert _reason(no_reason.value) == "Le motif du refus est obligatoire."
    assert _status(refused_vin) == "prevenu"
    reason = MandateAction(by="Test", reason="Parc fermé")
    assert await handle.execute_update(RemovalWorkflow.refuse, reason) == "Refusée"
    assert await handle.result() == "refusee"
    with session_scope() as session:
        assert session.scalars(select(Mandate.reason).where(Mandate.vin == refused_vin)).one() == "Parc fermé"
    other = _handle(client, number, cancelled_vin)
    assert await other.execute_update(RemovalWorkflow.cancel, MandateAction(by="Test")) == "Annulée"
    assert await other.result() == "annulee"
    assert [subject(m) for m in sink.to(a.email)][-1] == f"Annulation de la demande de dépose {cancelled_vin}"
    refusal = next(m for m in sink.messages if subject(m) == f"Refus de votre demande de dépose {refused_vin}")
    assert "Motif du refus : Parc fermé" in body_text(refusal)


async def test_reminder_after_n_days_lists_only_what_is_still_prevenu(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    days = get_settings().removal_reminder_days
    requester, a, _b, _request_id, number = await launch(3, 3)
    accepted, *waiting = requester.vins
    await _handle(client, number, accepted).execute_update(RemovalWorkflow.accept, MandateAction(by="Test"))
    await time_env.sleep(timedelta(days=days) - timedelta(hours=2))
    assert len(sink.to(a.email)) == 1, [(subject(m), m["Date"]) for m in sink.to(a.email)]  # only the notification
    await time_env.sleep(timedelta(hours=3))
    notification, reminder = sink.to(a.email)  # ONE reminder for the two vehicles still waiting
    assert subject(reminder) == (f"Relance : demande de dépose #{number} de {requester.name} en attente de votre "
                                   "réponse")
    assert set(links_of(reminder).by_vin) == set(waiting)
    await time_env.sleep(timedelta(days=days * 2))
    assert len(sink.to(a.email)) == 2  # reminded once
    assert not [m for m in sink.to(f"suivi@{requester.slug}.example") if "non effectuée" in subject(m)]


async def test_requester_alert_when_not_done_by_the_desired_date(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    requester, _a, _b, _request_id, number = await launch(3, 1, desired_in_days=1)
    done, late, *_ = requester.vins
    await _handle(client, number, done).execute_update(RemovalWorkflow.confirm, REMOVAL)
    await time_env.sleep(timedelta(days=2, hours=1))
    [alert] = [m for m in sink.to(f"suivi@{requester.slug}.example") if "non effectuée" in subject(m)]
    assert subject(alert) == f"Dépose non effectuée à la date souhaitée : demande #{number}"
    assert late in body_text(alert) and done not in body_text(alert)
    assert "Prévenu" in body_text(alert)


def test_depose_informatique_twice_changes_nothing_the_second_time(sink: SmtpSink) -> None:
    requester, a = make_requester(1), make_deposer()
    request_id, _number = create_request(requester, [line(requester, requester.vins[0], a)])
    with session_scope() as session:
        mandate = session.scalars(select(Mandate).where(Mandate.request_id == request_id)).one()
        mandate.status, mandate.removal_date, mandate.box_digits = "effectuee", REMOVAL.removal_date, "7654321"
        mandate_id = mandate.id
    activities = RemovalActivities(get_settings(), client=None)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    first = env.run(activities.close_removal_subscription, mandate_id)
    with session_scope() as session:
        session.execute(update(TrackedVehicle).where(TrackedVehicle.vin == requester.vins[0])
                        .values(closed_on=datetime(2026, 1, 6, tzinfo=UTC)))  # e.g. corrected by hand since
    second = env.run(activities.close_removal_subscription, mandate_id)
    assert first == second  # the same outbox row: the requester is told once
    with session_scope() as session:
        vehicle = session.scalars(select(TrackedVehicle).where(TrackedVehicle.vin == requester.vins[0])).one()
        assert vehicle.subscription_status == "closed" and vehicle.box_digits == "7654321"
        assert vehicle.closed_on == datetime(2026, 1, 6, tzinfo=UTC)  # a closed subscription is left alone
        assert session.scalar(select(OutboxMessage.subject).where(OutboxMessage.id == first)) == (
            f"Dépose effectuée {requester.vins[0]}")
