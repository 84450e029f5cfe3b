"""Removal mandates on the time-skipping server: grouped notification, every transition recorded as the channels
record it (the refused ones changing nothing) and signalled by the relay, the reminder and the desired-date alert
on their simulated days, and the "dépose informatique" run twice."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select, update
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.removals import RemovalActivities
from core.db import session_scope
from core.models import OutboxMessage, WorkflowSignal
from core.settings import get_settings
from core.signals import SignalRelay
from services.removals.models import Mandate, TrackedVehicle
from services.removals.service import listings, process
from services.removals.service.process import PARIS, TransitionRefused
from services.removals.service.rules import STATUS_LABELS, MandateAction
from tests.support.removals import (
    Deposer,
    Requester,
    create_request,
    eventually,
    line,
    links_of,
    make_deposer,
    make_requester,
    subject,
)
from tests.support.smtp import SmtpSink, body_text, free_port
from workflows.data.removals import RequestInput
from workflows.removal import RemovalRequestWorkflow, RemovalWorkflow


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


async def _act(relay: SignalRelay, vin: str, action: str, payload: MandateAction) -> str:
    """What every channel does: record the action in one transaction (refused: TransitionRefused, nothing
    written), then the relay signals the workflow. Returns the new status label."""
    with session_scope() as session:
        mandate_id = session.scalars(select(Mandate.id).where(Mandate.vin == vin)).one()
        row = process.record_action(session, get_settings(), mandate_id, action, payload, task_queue=relay.task_queue)
    await relay.deliver_pending()
    return STATUS_LABELS[row.status]


REMOVAL = MandateAction(by="Test", removal_date=datetime(2026, 1, 5, 10, 23, tzinfo=UTC), box_digits="4512345",
                        technician="Karim Benali")


async def test_one_mail_per_deposer_then_accept_and_removal_close_the_subscription(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
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
    assert f"{a.name} ({a.code}) : 2 véhicule(s)" in body_text(received)
    assert "n'a pas pu être envoyé" not in body_text(received)
    assert all(_status(vin) == "prevenu" for vin in requester.vins)
    with session_scope() as session:  # Prévenu once the server accepted the mail, and when
        assert None not in session.scalars(select(Mandate.notified_at).where(Mandate.vin.in_(requester.vins))).all()

    vin = requester.vins[0]
    handle = _handle(client, number, vin)
    assert await _act(time_relay, vin, "accept", MandateAction(by="Test")) == "Acceptée"
    assert _status(vin) == "acceptee"
    assert await handle.query(RemovalWorkflow.current_status) == "acceptee"  # the signal reached the workflow
    with pytest.raises(TransitionRefused) as refused:
        await _act(time_relay, vin, "accept", MandateAction(by="Test"))
    assert refused.value.message == "Action refusée : cette demande de dépose est déjà « Acceptée »."
    with pytest.raises(TransitionRefused) as bad_digits:
        await _act(time_relay, vin, "confirm", MandateAction(by="Test", removal_date=REMOVAL.removal_date,
                                                             box_digits="12AB", technician="X"))
    assert "7 derniers chiffres" in bad_digits.value.message
    assert _status(vin) == "acceptee"
    assert await _act(time_relay, vin, "confirm", REMOVAL) == "Effectuée"
    assert await handle.result() == "effectuee"
    with session_scope() as session:
        vehicle = session.scalars(select(TrackedVehicle).where(TrackedVehicle.vin == vin)).one()
        assert (vehicle.subscription_status, vehicle.box_digits, vehicle.closed_on) == (
            "closed", "4512345", REMOVAL.removal_date)
    subjects = [subject(m) for m in sink.to(f"suivi@{requester.slug}.example")]
    assert f"Acceptation de votre demande de dépose {vin}" in subjects and f"Dépose effectuée {vin}" in subjects
    assert subjects.count(f"Acceptation de votre demande de dépose {vin}") == 1
    accepted = next(m for m in sink.messages if subject(m) == f"Acceptation de votre demande de dépose {vin}")
    assert f"Le mandataire {a.name} a accepté la demande de dépose suivante" in body_text(accepted)
    assert f"VIN : {vin}" in body_text(accepted) and "Lieu : Chambery" in body_text(accepted)
    # A finished mandate refuses everything, and a signal delivered again changes nothing.
    with pytest.raises(TransitionRefused) as closed:
        await _act(time_relay, vin, "cancel", MandateAction(by="Test"))
    assert closed.value.message == ("Action refusée : la demande de dépose est « Effectuée », elle ne peut plus être "
                                    "annulée.")
    assert _status(vin) == "effectuee"


async def test_a_signal_delivered_again_changes_nothing_more(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    """At-least-once delivery: the same `recorded` signal twice sends its mail once, and once more after the
    workflow closed it is dropped (nothing started again, nothing sent)."""
    client, _queue, _mail_queue = time_worker
    requester, _a, _b, _request_id, number = await launch(1, 1)
    vin = requester.vins[0]
    handle = _handle(client, number, vin)
    await _act(time_relay, vin, "accept", MandateAction(by="Test"))
    with session_scope() as session:
        signal = session.scalars(select(WorkflowSignal).where(WorkflowSignal.workflow_id == handle.id)).one()
        assert signal.delivered_at is not None and signal.payload["status"] == "acceptee"
    _undeliver(signal.id)
    assert await time_relay.deliver_pending() == 1
    await _act(time_relay, vin, "refuse", MandateAction(by="Test", reason="Parc fermé"))
    assert await handle.result() == "refusee"
    _undeliver(signal.id)
    assert await time_relay.deliver_pending() == 1  # moot: the workflow is closed
    assert await handle.result() == "refusee"  # still the same run: the starter did not start another
    alerts = [subject(m) for m in sink.to(f"suivi@{requester.slug}.example")]
    assert alerts.count(f"Acceptation de votre demande de dépose {vin}") == 1
    assert alerts.count(f"Refus de votre demande de dépose {vin}") == 1


def _undeliver(signal_id: int) -> None:
    with session_scope() as session:
        session.execute(update(WorkflowSignal).where(WorkflowSignal.id == signal_id).values(delivered_at=None))


async def test_refusal_needs_a_reason_and_cancel_tells_the_deposer(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    requester, a, _b, _request_id, number = await launch(2, 2)
    refused_vin, cancelled_vin = requester.vins
    handle = _handle(client, number, refused_vin)
    with pytest.raises(TransitionRefused) as no_reason:
        await _act(time_relay, refused_vin, "refuse", MandateAction(by="Test", reason="  "))
    assert no_reason.value.message == "Le motif du refus est obligatoire."
    assert _status(refused_vin) == "prevenu"
    assert await _act(time_relay, refused_vin, "refuse", MandateAction(by="Test", reason="Parc fermé")) == "Refusée"
    assert await handle.result() == "refusee"
    with session_scope() as session:
        assert session.scalars(select(Mandate.reason).where(Mandate.vin == refused_vin)).one() == "Parc fermé"
    other = _handle(client, number, cancelled_vin)
    assert await _act(time_relay, cancelled_vin, "cancel", MandateAction(by="Test")) == "Annulée"
    assert await other.result() == "annulee"
    assert [subject(m) for m in sink.to(a.email)][-1] == f"Annulation de la demande de dépose {cancelled_vin}"
    refusal = next(m for m in sink.messages if subject(m) == f"Refus de votre demande de dépose {refused_vin}")
    assert "Motif du refus : Parc fermé" in body_text(refusal)


async def test_reminder_after_n_days_lists_only_what_is_still_prevenu(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    days = get_settings().removal_reminder_days
    requester, a, _b, _request_id, number = await launch(3, 3)
    accepted, *waiting = requester.vins
    await _act(time_relay, accepted, "accept", MandateAction(by="Test"))
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
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    client, queue, mail_queue = time_worker
    requester, _a, _b, _request_id, number = await launch(3, 1, desired_in_days=1)
    done, late, *_ = requester.vins
    await _act(time_relay, done, "confirm", REMOVAL)
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


async def test_temporal_unreachable_delays_the_signal_and_loses_nothing(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    """The action is recorded and answered while Temporal is down; the relay keeps the signal until it gets through,
    then the workflow catches up and the requester's alert leaves."""
    client, queue, mail_queue = time_worker
    requester, _a, _b, _request_id, number = await launch(1, 1)
    vin = requester.vins[0]
    with session_scope() as session:
        mandate_id = session.scalars(select(Mandate.id).where(Mandate.vin == vin)).one()
        process.record_action(session, get_settings(), mandate_id, "accept", MandateAction(by="Test"), task_queue=queue)
    assert _status(vin) == "acceptee"  # what every screen shows, at once

    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # nothing listens there
    outage = SignalRelay(dead, get_settings(), task_queue=queue)
    assert await outage.deliver_pending() == 0
    with session_scope() as session:
        pending = session.scalars(select(WorkflowSignal).where(
            WorkflowSignal.workflow_id == f"removal-{number}-vin-{vin}", WorkflowSignal.delivered_at.is_(None))).all()
    assert len(pending) == 1
    handle = _handle(client, number, vin)
    assert await handle.query(RemovalWorkflow.current_status) == "prevenu"
    assert not [m for m in sink.to(f"suivi@{requester.slug}.example") if "Acceptation" in subject(m)]

    assert await time_relay.deliver_pending() == 1  # Temporal is back
    assert await handle.query(RemovalWorkflow.current_status) == "acceptee"
    await eventually(lambda: any(subject(m) == f"Acceptation de votre demande de dépose {vin}"
                                 for m in sink.to(f"suivi@{requester.slug}.example")))


async def test_a_mail_the_server_refuses_leaves_its_vehicles_nouvelle(
        time_worker: tuple[Client, str, str], time_env: WorkflowEnvironment, sink: SmtpSink, time_relay: SignalRelay,
        launch: Callable[..., Awaitable[Launched]]) -> None:
    """«Prévenu» means the deposer's mail was accepted by the SMTP server: refused (5xx), its vehicles stay
    «Nouvelle», hidden from the deposer; the requester is told which mail failed and may cancel them (the
    deposer, never told, gets no cancellation)."""
    sink.scripted_replies.append("550 5.1.1 Adresse inconnue")
    requester, a, _b, request_id, number = await launch(2, 2)  # one deposer: its mail is the first DATA
    assert sink.to(a.email) == []
    assert [_status(vin) for vin in requester.vins] == ["nouvelle", "nouvelle"]
    [received] = sink.to(f"suivi@{requester.slug}.example")
    assert "Le mail de la demande n'a pas pu être envoyé aux mandataires suivants" in body_text(received)
    assert f"{a.name} ({a.code}) : 2 véhicule(s) ; réponse du serveur : 550" in body_text(received)
    with session_scope() as session:
        assert listings.deposer_mandates(session, deposer_id=a.id).total == 0  # not shown to the deposer
        [untold] = listings.untold_deposers(session, organisation_id=requester.id, request_id=request_id)
        assert (untold.name, untold.vehicles, untold.state) == (a.name, 2, "ko") and "550" in untold.reply
    with pytest.raises(TransitionRefused) as early:
        await _act(time_relay, requester.vins[0], "accept", MandateAction(by="Test"))
    assert "n'a pas encore été transmise au mandataire" in early.value.message
    assert await _act(time_relay, requester.vins[0], "cancel", MandateAction(by="Test")) == "Annulée"
    assert await _handle(time_worker[0], number, requester.vins[0]).result() == "annulee"
    await eventually(lambda: any(subject(m) == f"Annulation de votre demande de dépose {requester.vins[0]}"
                                 for m in sink.to(f"suivi@{requester.slug}.example")))
    assert sink.to(a.email) == []
    with session_scope() as session:
        assert listings.deposer_mandates(session, deposer_id=a.id).total == 0  # cancelled before it was told
