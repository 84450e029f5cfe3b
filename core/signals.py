"""Starts and signals through a transactional outbox: written with the change they follow, delivered after.

This is the one hand-off from a request to Temporal. A user's, partner's or recipient's action (a campaign launch,
a driver's answer, a click on a mail link...) is decided and recorded in PostgreSQL in one transaction, with a row
here, and answered at once. The relay, in the worker, delivers the row a moment later: woken by NOTIFY at commit,
and sweeping on a timer for what failed. So a slow or unreachable Temporal delays the workflow and never the
answer, and loses nothing.

A row is a start (`queue_start`), a signal (`queue_signal`), or a signal with its start (signal-with-start: the
workflow is started if it does not exist yet, then signalled). Delivery is at least once and, with one active
relay per task queue (a PostgreSQL advisory lock), in order per workflow: signal handlers must be idempotent, and
starts are (deterministic ids, `core.temporal.start_workflow`). A signal to a workflow that is closed (or, without
a start, does not exist) is dropped with a log line.
"""

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import psycopg
from pydantic_core import to_jsonable_python
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.db import session_scope, table, utcnow
from core.logging import log
from core.models import WorkflowSignal
from core.settings import Settings
from core.temporal import StartSpec, start_workflow

CHANNEL = "relais_signals"
BATCH = 500
PARALLEL = 32
RPC_TIMEOUT = timedelta(seconds=10)
PURGE_EVERY_SECONDS = 3600


@dataclass(frozen=True)
class PendingSignal:
    id: int
    workflow_id: str
    signal: str | None
    payload: Any
    task_queue: str
    start: dict[str, Any] | None


_INSERT = insert(table(WorkflowSignal))


def _row(organisation_id: int, workflow_id: str, signal: str | None, payload: object, task_queue: str,
         start: StartSpec | None = None) -> dict[str, Any]:
    return {"organisation_id": organisation_id, "workflow_id": workflow_id, "signal": signal,
            "payload": None if payload is None else to_jsonable_python(payload), "task_queue": task_queue,
            "start": asdict(start) if start else None}


def queue_signal(session: Session, *, organisation_id: int, workflow_id: str, signal: str, payload: object,
                 task_queue: str, start: StartSpec | None = None, coalesce: bool = False) -> None:
    """Add the signal to the caller's transaction: it exists (and is delivered) if and only if that commits.
    With `start`, the workflow is started first if it does not exist (signal-with-start). With `coalesce` (a
    wake-up, where one is as good as many), nothing is added while the same signal with the same payload still
    waits for delivery to that workflow."""
    if start is not None:
        assert start.workflow_id == workflow_id and start.task_queue == task_queue
    if coalesce and session.scalar(
            select(WorkflowSignal.id).where(WorkflowSignal.workflow_id == workflow_id, WorkflowSignal.signal == signal,
                                            WorkflowSignal.payload == to_jsonable_python(payload),
                                            WorkflowSignal.delivered_at.is_(None)).limit(1)) is not None:
        return
    # A statement trigger (migration 5c1d0e7a9b42) sends NOTIFY relais_signals: delivered at commit, folded with
    # the transaction's others, and without a round trip of its own.
    session.execute(_INSERT, _row(organisation_id, workflow_id, signal, payload, task_queue, start))


def queue_signals(session: Session, *, organisation_id: int, signal: str, task_queue: str,
                  payloads: list[tuple[str, object]]) -> None:
    """Several signals of one kind, [(workflow id, payload)], in one INSERT: as many `queue_signal` calls."""
    if payloads:
        session.execute(_INSERT, [_row(organisation_id, workflow_id, signal, payload, task_queue)
                                  for workflow_id, payload in payloads])


def queue_start(session: Session, *, organisation_id: int, spec: StartSpec) -> None:
    """Add the start of `spec`'s workflow to the caller's transaction (started once it commits, and only then)."""
    session.execute(_INSERT, _row(organisation_id, spec.workflow_id, None, None, spec.task_queue, spec))


class SignalRelay:
    """Delivers the pending signals of one task queue. `run()` is the worker's loop; tests call
    `deliver_pending()` directly when they want delivery at a precise moment."""

    def __init__(self, client: Client, settings: Settings, *, task_queue: str | None = None,
                 sweep_seconds: float | None = None) -> None:
        self.client = client
        self.settings = settings
        self.task_queue = task_queue or settings.task_queue
        self.sweep_seconds = sweep_seconds if sweep_seconds is not None else settings.signal_sweep_seconds

    async def deliver_pending(self) -> int:
        """Deliver what is pending, oldest first, until nothing is left or something fails; returns the count.
        At most `signal_rate_per_second` (0: no limit), in batches of a second's worth."""
        rate = self.settings.signal_rate_per_second
        total, loop = 0, asyncio.get_running_loop()
        while True:
            started = loop.time()
            pending = await asyncio.to_thread(self._pending, max(1, int(rate)) if rate else BATCH)
            if not pending:
                return total
            delivered = await self._deliver(pending)
            if delivered:
                await asyncio.to_thread(self._mark_delivered, delivered)
            total += len(delivered)
            if len(delivered) < len(pending):
                return total  # Temporal unreachable or refusing: the next sweep tries again
            if rate:
                await asyncio.sleep(len(pending) / rate - (loop.time() - started))

    async def run(self) -> None:
        """Forever (cancel to stop): wait for a commit's NOTIFY or the sweep timer, then deliver."""
        while True:
            try:
                await self._listen_and_deliver()
            except (psycopg.Error, OSError) as exc:
                log.warning("signals.relay_db_error", error=str(exc))
                await asyncio.sleep(self.sweep_seconds)

    async def _listen_and_deliver(self) -> None:
        dsn = self.settings.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            # One active relay per task queue, whatever the number of worker processes: order per workflow holds.
            # The lock belongs to this connection, so a killed worker hands over to another at once.
            lock = "SELECT pg_try_advisory_lock(hashtext('relais-signals'), hashtext(%s))"
            while True:
                locked = await (await conn.execute(lock, [self.task_queue])).fetchone()
                if locked and locked[0]:
                    break
                await asyncio.sleep(self.sweep_seconds)  # another worker process relays this queue
            await conn.execute(f"LISTEN {CHANNEL}")
            log.info("signals.relay_started", task_queue=self.task_queue)
            loop, purged_at = asyncio.get_running_loop(), 0.0
            while True:
                try:
                    await self.deliver_pending()
                    if loop.time() - purged_at > PURGE_EVERY_SECONDS:
                        await asyncio.to_thread(self.purge_delivered)
                        purged_at = loop.time()
                except Exception as exc:  # noqa: BLE001 — never let one bad round stop the relay
                    log.warning("signals.relay_round_failed", error=repr(exc))
                async for _ in conn.notifies(timeout=self.sweep_seconds, stop_after=1):
                    pass

    def _pending(self, limit: int) -> list[PendingSignal]:
        stmt = (select(WorkflowSignal.id, WorkflowSignal.workflow_id, WorkflowSignal.signal, WorkflowSignal.payload,
                       WorkflowSignal.task_queue, WorkflowSignal.start)
                .where(WorkflowSignal.delivered_at.is_(None), WorkflowSignal.task_queue == self.task_queue)
                .order_by(WorkflowSignal.id).limit(limit))
        with session_scope() as session:
            return [PendingSignal(*row) for row in session.execute(stmt)]

    def purge_delivered(self) -> int:
        """Forget what was delivered more than `signal_retention_days` ago (the workflows' histories keep it)."""
        cutoff = utcnow() - timedelta(days=self.settings.signal_retention_days)
        with session_scope() as session:
            deleted = session.execute(delete(WorkflowSignal).where(
                WorkflowSignal.task_queue == self.task_queue, WorkflowSignal.delivered_at < cutoff))
        return deleted.rowcount or 0  # type: ignore[attr-defined]

    def _mark_delivered(self, ids: list[int]) -> None:
        with session_scope() as session:
            session.execute(update(WorkflowSignal).where(WorkflowSignal.id.in_(ids)).values(delivered_at=utcnow()))

    async def _deliver(self, pending: list[PendingSignal]) -> list[int]:
        """Each workflow's signals in order (stopping at its first failure), workflows in parallel."""
        by_workflow: dict[str, list[PendingSignal]] = defaultdict(list)
        for item in pending:
            by_workflow[item.workflow_id].append(item)
        gate, delivered = asyncio.Semaphore(PARALLEL), []

        async def deliver_in_order(items: list[PendingSignal]) -> None:
            async with gate:
                for item in items:
                    if not await self._deliver_one(item):
                        return
                    delivered.append(item.id)

        await asyncio.gather(*(deliver_in_order(items) for items in by_workflow.values()))
        return delivered

    async def _deliver_one(self, item: PendingSignal) -> bool:
        """True once delivered (or moot: the workflow is closed); False to try again later."""
        try:
            if item.start is not None:
                await start_workflow(self.client, StartSpec(**item.start), signal=item.signal, signal_arg=item.payload)
            else:
                assert item.signal is not None
                await self.client.get_workflow_handle(item.workflow_id).signal(item.signal, item.payload,
                                                                              rpc_timeout=RPC_TIMEOUT)
            return True
        except WorkflowAlreadyStartedError:
            if item.signal:  # started and closed already: nothing left to tell it
                log.warning("signals.dropped_workflow_closed", workflow_id=item.workflow_id, signal=item.signal)
            return True
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                log.warning("signals.dropped_workflow_not_found", workflow_id=item.workflow_id, signal=item.signal)
                return True
            log.warning("signals.delivery_failed", workflow_id=item.workflow_id, error=exc.message)
            return False
        except Exception as exc:  # noqa: BLE001 — e.g. no connection to Temporal at all: retried at the next sweep
            log.warning("signals.delivery_failed", workflow_id=item.workflow_id, error=repr(exc))
            return False


async def stop_relay(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
