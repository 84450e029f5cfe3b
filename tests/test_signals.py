"""The signal relay (`core.signals`): one active relay per task queue, and another one taking over when it dies.

The relay's normal path (NOTIFY at commit, delivery, signal-with-start) is driven end to end by the removals tests;
here, signals to a workflow that does not exist and has no starter are delivered as moot, which is enough to see
which relay works."""

import asyncio
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import select, text, update
from temporalio.testing import WorkflowEnvironment

from core.db import session_scope, utcnow
from core.models import WorkflowSignal
from core.settings import get_settings
from core.signals import SignalRelay, queue_signal, stop_relay
from tests.support.factories import make_org
from tests.support.removals import eventually


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
    relays = [SignalRelay(time_env.client, get_settings(), starters={}, task_queue=queue, sweep_seconds=0.1)
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
    relay = SignalRelay(time_env.client, get_settings(), starters={}, task_queue=queue)
    assert relay.purge_delivered() == 1
    with session_scope() as session:
        left = set(session.scalars(select(WorkflowSignal.workflow_id).where(WorkflowSignal.task_queue == queue)))
    assert left == {recent, pending}
