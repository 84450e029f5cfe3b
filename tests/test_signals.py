"""The hand-off (`core.signals`): starts and signals wait while Temporal is unreachable, then arrive once and in
order; one active relay per task queue, and another one taking over when it dies.

The relay's normal path (NOTIFY at commit, delivery, signal-with-start) is also driven end to end by the campaigns
and removals tests; for the failover, signals to a workflow that does not exist (and carry no start) are delivered
as moot, which is enough to see which relay works."""

import asyncio
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import select, text, update
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.db import session_scope, utcnow
from core.models import WorkflowSignal
from core.settings import get_settings
from core.signals import SignalRelay, queue_signal, queue_start, stop_relay
from core.temporal import start_spec
from tests.support.factories import make_org
from tests.support.removals import eventually
from tests.support.smtp import free_port


def _lock_holders(task_queue: str) -> int:
    """Sessions holding the relay's advisory lock of `task_queue` (two-key form: classid, objid)."""
    with session_scope() as session:
        return session.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
            " AND classid::bigint = (hashtext('relais-signals')::bigint & 4294967295)"
            " AND objid::bigint = (hashtext(:queue)::bigint & 4294967295)"), {"queue": task_queue}) or 0


def _queue(organisation_id: int, task_queue: str) -> str:
    workflow_id = f"nothing-{uuid4().hex[:8]}"
    with session_scope() as session:
        queue_signal(session, organisation_id=organisation_id, workflow_id=workflow_id, signal="recorded",
                     payload={"status": "acceptee"}, task_queue=task_queue)
    return workflow_id


def _delivered(workflow_id: str) -> bool:
    with session_scope() as session:
        return session.scalar(select(WorkflowSignal.delivered_at).where(
            WorkflowSignal.workflow_id == workflow_id)) is not None


async def test_one_relay_per_task_queue_and_another_takes_over(time_env: WorkflowEnvironment) -> None:
    queue, org = f"tq-{uuid4().hex[:8]}", make_org()
    relays = [SignalRelay(time_env.client, get_settings(), task_queue=queue, sweep_seconds=0.1)
              for _ in range(2)]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: _lock_holders(queue) == 1)
        first = _queue(org.id, queue)
        await eventually(lambda: _delivered(first))
        await stop_relay(tasks[0])  # a worker process dies: its connection, and the lock if it held it, go with it
        second = _queue(org.id, queue)
        await eventually(lambda: _delivered(second))
        assert _lock_holders(queue) == 1
    finally:
        for task in tasks:
            await stop_relay(task)
    await eventually(lambda: _lock_holders(queue) == 0)


def test_delivered_signals_are_purged_after_the_retention_and_pending_ones_never(
        time_env: WorkflowEnvironment) -> None:
    queue, org = f"tq-{uuid4().hex[:8]}", make_org()
    old, recent, pending = (_queue(org.id, queue) for _ in range(3))
    days = get_settings().signal_retention_days
    with session_scope() as session:
        for workflow_id, age in ((old, days + 1), (recent, days - 1)):
            session.execute(update(WorkflowSignal).where(WorkflowSignal.workflow_id == workflow_id)
                            .values(delivered_at=utcnow() - timedelta(days=age)))
    relay = SignalRelay(time_env.client, get_settings(), task_queue=queue)
    assert relay.purge_delivered() == 1
    with session_scope() as session:
        left = set(session.scalars(select(WorkflowSignal.workflow_id).where(WorkflowSignal.task_queue == queue)))
    assert left == {recent, pending}


@workflow.defn(sandboxed=False)
class Collects:
    """Test-only: records the `poke` signals it gets, and ends on "fin"."""

    def __init__(self) -> None:
        self.pokes: list[str] = []

    @workflow.run
    async def run(self, prefix: str) -> list[str]:
        await workflow.wait_condition(lambda: "fin" in self.pokes)
        return [f"{prefix}{p}" for p in self.pokes]

    @workflow.signal
    def poke(self, value: str) -> None:
        self.pokes.append(value)


async def test_starts_and_signals_wait_for_temporal_then_arrive_once_and_in_order(
        time_env: WorkflowEnvironment) -> None:
    queue, org = f"tq-{uuid4().hex[:8]}", make_org()
    workflow_id = f"collects-{uuid4().hex[:8]}"
    spec = start_spec(workflow_id, "Collects", ">", task_queue=queue, summary="Test", RelaisDomain="tests")
    with session_scope() as session:  # the request's transaction: a start, then what follows it
        queue_start(session, organisation_id=org.id, spec=spec)
        for value in ("a", "b"):
            queue_signal(session, organisation_id=org.id, workflow_id=workflow_id, signal="poke", payload=value,
                         task_queue=queue)
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # Temporal unreachable
    assert await SignalRelay(dead, get_settings(), task_queue=queue).deliver_pending() == 0
    relay = SignalRelay(time_env.client, get_settings(), task_queue=queue)
    async with Worker(time_env.client, task_queue=queue, workflows=[Collects]):
        assert await relay.deliver_pending() == 3
        with session_scope() as session:  # delivered again (a relay that died before marking): harmless
            queue_start(session, organisation_id=org.id, spec=spec)
            queue_signal(session, organisation_id=org.id, workflow_id=workflow_id, signal="poke", payload="fin",
                         task_queue=queue, start=spec)
        assert await relay.deliver_pending() == 2
        handle = time_env.client.get_workflow_handle(workflow_id)
        assert await handle.result() == [">a", ">b", ">fin"]
        first_run = (await handle.describe()).run_id
        with session_scope() as session:  # after it closed: a start starts nothing, a signal is dropped
            queue_start(session, organisation_id=org.id, spec=spec)
            queue_signal(session, organisation_id=org.id, workflow_id=workflow_id, signal="poke", payload="x",
                         task_queue=queue, start=spec)
        assert await relay.deliver_pending() == 2
    described = await handle.describe()  # the latest run: still the first one, completed (a new one would wait)
    assert described.run_id == first_run and described.status == WorkflowExecutionStatus.COMPLETED


def test_a_coalesced_wake_is_added_once_while_one_waits_and_again_once_it_is_delivered() -> None:
    queue, org, workflow_id = f"tq-{uuid4().hex[:8]}", make_org(), f"robot-{uuid4().hex[:8]}"

    def wake(command: str = "wake") -> None:
        with session_scope() as session:
            queue_signal(session, organisation_id=org.id, workflow_id=workflow_id, signal="control",
                         payload={"command": command}, task_queue=queue, coalesce=True)

    def pending() -> list[str]:
        with session_scope() as session:
            return [p["command"] for p in session.scalars(
                select(WorkflowSignal.payload).where(WorkflowSignal.workflow_id == workflow_id,
                                                     WorkflowSignal.delivered_at.is_(None))
                .order_by(WorkflowSignal.id))]

    for _ in range(3):
        wake()
    wake("pause")  # another payload is another signal
    assert pending() == ["wake", "pause"]
    with session_scope() as session:
        session.execute(update(WorkflowSignal).where(WorkflowSignal.workflow_id == workflow_id)
                        .values(delivered_at=utcnow()))
    wake()
    assert pending() == ["wake"]
