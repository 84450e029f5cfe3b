"""Bulk sending for campaigns: a few SMTP connections, each reused for many messages, every outcome recorded as
soon as its reply arrives.

Same rules as `send_mail`: rows already sent or KO are skipped (so a retried batch never sends them twice), 5xx is
final (KO with the reply, then RSET: the connection stays usable), 4xx and connection errors leave the row pending
(reply stored, attempts + 1), reopen the connection and, at the end, make the activity fail with a retryable
`TemporarySmtpError` so that Temporal retries the rest later with backoff.

How little a crash can re-send: the connections take rows from one shared iterator (no race between "is there
work?" and "take it"), the pace is shared by every connection of the process (`Pace`), and a writer task commits
whatever outcomes are ready, up to `GROUP_LIMIT` per UPDATE, while the connections go on sending. A connection
takes a new row only while fewer than `GROUP_LIMIT` outcomes wait to be committed, so a `kill -9` can leave at
most `unrecorded_bound(connections)` = connections (one message in flight on each) + `GROUP_LIMIT` messages
accepted by the server but not recorded: the retry sends those again, nothing else. The writer heartbeats the
progress after each commit and every `HEARTBEAT_SECONDS` when nothing moves (a slow or paced server), so that a
heartbeat timeout of 20 s retries a crashed worker's batch within about 30 s.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import aiosmtplib
from sqlalchemy import Connection, select
from sqlalchemy.orm import undefer
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import smtp_code
from activities.recorder import GROUP_LIMIT, Recorder
from core.db import get_engine, session_scope, utcnow
from core.models import OutboxMessage
from core.outbox import HeaderInjection, envelope, message_bytes, record_outcomes, smtp_client, smtp_quit
from core.settings import Settings
from workflows.data.mail import BatchSendResult

__all__ = ["GROUP_LIMIT", "BatchSendResult", "MailBatchActivities", "Pace", "unrecorded_bound"]


def unrecorded_bound(connections: int) -> int:
    """Most messages a crash of the sending process can leave accepted by the server but not recorded (sent again
    by the retry): one in flight per connection plus the outcomes waiting for their commit."""
    return max(1, connections) + GROUP_LIMIT


@dataclass
class _Outcome:
    row: OutboxMessage
    status: str  # sent | ko | pending
    reply: str
    at: datetime = field(default_factory=utcnow)  # when the reply came: the row's sent_at


class Pace:
    """At most `rate` mails per second across this process's batches (0: unlimited)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        slot = max(self.next_slot, loop.time())
        self.next_slot = slot + self.interval
        await asyncio.sleep(slot - loop.time())


def _describe(exc: Exception) -> tuple[int | None, str]:
    code = smtp_code(exc)
    return code, f"{code} {getattr(exc, 'message', '') or exc}" if code else f"{type(exc).__name__}: {exc}"


class MailBatchActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pace = Pace(settings.smtp_max_per_second)  # one per process: shared by every batch and connection

    @activity.defn(name="send_mail_batch")
    async def send_mail_batch(self, outbox_ids: list[int]) -> BatchSendResult:
        """Send the pending rows of `outbox_ids` over `smtp_connections` connections; raises TemporarySmtpError
        (retryable) when some stay pending."""
        rows = await asyncio.to_thread(self._pending_rows, outbox_ids)
        if not rows:
            return BatchSendResult(0, 0, 0)
        store = _Store()
        recorder = Recorder[_Outcome](store.record)
        writer = asyncio.create_task(recorder.run())
        todo = iter(rows)  # shared by the connections: taking a row cannot race
        errors: list[str] = []  # why connections stopped
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(max(1, self.settings.smtp_connections), len(rows))):
                    group.create_task(self._connection(todo, recorder, errors))
            for row in todo:  # every connection stopped: the rest waits for the retry, with the last error
                recorder.add(_Outcome(row, "pending", errors[-1]))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # a bug or the database: not a message's fault
        finally:
            recorder.close()
            try:
                await asyncio.shield(writer)  # what was sent gets recorded, whatever stopped us
            finally:
                await asyncio.to_thread(store.close)
        counts = recorder.counts
        if counts.pending:
            raise ApplicationError(f"{counts.pending} message(s) en attente : SMTP temporairement indisponible "
                                   f"({errors[-1] if errors else 'voir les réponses'})", type="TemporarySmtpError")
        return counts

    async def _connection(self, todo: Iterator[OutboxMessage], recorder: Recorder[_Outcome], errors: list[str]) -> None:
        """One SMTP connection: sends the next row until none is left, reopens after a 4xx or a lost connection,
        stops when it cannot connect."""
        while True:
            client = smtp_client(self.settings)
            try:
                await client.connect()
                if self.settings.smtp_username:
                    await client.login(self.settings.smtp_username, self.settings.smtp_password or "")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                errors.append(_describe(exc)[1])
                client.close()
                return
            try:
                while True:
                    await recorder.room()
                    await self.pace.wait()
                    row = next(todo, None)
                    if row is None:
                        return
                    outcome, usable = await self._send_one(client, row)
                    recorder.add(outcome)
                    if not usable:
                        errors.append(outcome.reply)
                        break  # suspect connection: open a new one
            finally:
                await smtp_quit(client)

    async def _send_one(self, client: aiosmtplib.SMTP, row: OutboxMessage) -> tuple[_Outcome, bool]:
        """The row's outcome, and whether the connection can send the next one."""
        try:
            sender, recipients = envelope(row)
            _errors, reply = await client.sendmail(sender, recipients, message_bytes(row))
            return _Outcome(row, "sent", reply), True
        except HeaderInjection as exc:
            return _Outcome(row, "ko", str(exc)), True
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            code, reply = _describe(exc)
            if code is None or code < 500:
                return _Outcome(row, "pending", reply), False
            try:
                await client.rset()  # after a refusal the session stays usable for the next message
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                return _Outcome(row, "ko", reply), False
            return _Outcome(row, "ko", reply), True

    def _pending_rows(self, outbox_ids: list[int]) -> list[OutboxMessage]:
        with session_scope() as session:
            # By id only, the status tested here: through the status index (see core.outbox.record_outcomes) this
            # read every pending row.
            stmt = select(OutboxMessage).options(undefer(OutboxMessage.mime)).where(OutboxMessage.id.in_(outbox_ids))
            rows = [r for r in session.scalars(stmt.order_by(OutboxMessage.id)) if r.status == "pending"]
            session.expunge_all()
            return rows



class _Store:
    """Records a batch's groups over one database connection, kept for the batch (the recorder commits one group
    at a time): no pool check-out and ping before each group, whose commit latency holds the connections up. A
    connection that failed is dropped; the recorder's retry opens another."""

    def __init__(self) -> None:
        self.connection: Connection | None = None

    def record(self, outcomes: list[_Outcome]) -> None:
        """One UPDATE and one commit for the whole group."""
        group = [{"id": o.row.id, "status": o.status, "reply": o.reply[:2000],
                  "sent_at": o.at.isoformat() if o.status == "sent" else None} for o in outcomes]
        if self.connection is None:
            self.connection = get_engine().connect()
        try:
            record_outcomes(self.connection, group)
            self.connection.commit()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            with contextlib.suppress(Exception):  # a dead connection: nothing to give back
                connection.close()
