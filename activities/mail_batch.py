"""Bulk sending for campaigns: a few SMTP connections, each reused for many messages.

Same rules as `send_mail`: rows already sent or KO are skipped (so a retried batch never sends twice),
5xx is final (KO with the reply), 4xx and connection errors leave the row pending and make the
activity fail so that Temporal retries it later with backoff.
"""

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

import aiosmtplib
from sqlalchemy import select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import smtp_code
from core.db import session_scope, utcnow
from core.models import OutboxMessage
from core.outbox import HeaderInjection, build_email, envelope
from core.settings import Settings

FLUSH_EVERY = 100


@dataclass
class BatchSendResult:
    sent: int
    ko: int
    pending: int


@dataclass
class _Outcome:
    row: OutboxMessage
    status: str  # sent | ko | pending
    reply: str


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


class MailBatchActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pace = Pace(settings.smtp_max_per_second)

    @activity.defn(name="send_mail_batch")
    async def send_mail_batch(self, outbox_ids: list[int]) -> BatchSendResult:
        rows = await asyncio.to_thread(self._pending_rows, outbox_ids)
        queue: asyncio.Queue[OutboxMessage] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        outcomes: list[_Outcome] = []
        counts = BatchSendResult(0, 0, 0)

        async def flush() -> None:
            done, outcomes[:] = list(outcomes), []
            await asyncio.to_thread(self._record, done)
            for o in done:
                setattr(counts, o.status, getattr(counts, o.status) + 1)
            activity.heartbeat(counts.sent + counts.ko + counts.pending)

        async def connection() -> None:
            while not queue.empty():
                client = self._client()
                try:
                    await client.connect()
                    if self.settings.smtp_username:
                        await client.login(self.settings.smtp_username, self.settings.smtp_password or "")
                except (aiosmtplib.SMTPException, OSError) as exc:
                    # No server: the rest of this connection's share stays pending for the retry.
                    while not queue.empty():
                        outcomes.append(_Outcome(queue.get_nowait(), "pending", f"{type(exc).__name__}: {exc}"))
                    return
                async with client:
                    while not queue.empty():
                        await self.pace.wait()
                        outcome = await self._send_one(client, queue.get_nowait())
                        outcomes.append(outcome)
                        if len(outcomes) >= FLUSH_EVERY:
                            await flush()
                        if outcome.status == "pending":
                            break  # the connection is suspect: open a new one

        await asyncio.gather(*(connection() for _ in range(max(1, self.settings.smtp_connections))))
        await flush()
        if counts.pending:
            raise ApplicationError(f"{counts.pending} message(s) en attente : SMTP temporairement indisponible",
                                   type="TemporarySmtpError")
        return counts

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_seconds,
                               start_tls=s.smtp_starttls, tls_context=ssl.create_default_context() if s.smtp_starttls
                               else None)

    async def _send_one(self, client: aiosmtplib.SMTP, row: OutboxMessage) -> _Outcome:
        try:
            sender, recipients = envelope(row)
            _errors, reply = await client.sendmail(sender, recipients, build_email(row).as_bytes())
            return _Outcome(row, "sent", reply)
        except HeaderInjection as exc:
            return _Outcome(row, "ko", str(exc))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            code = smtp_code(exc)
            reply = f"{code} {getattr(exc, 'message', '') or exc}" if code else f"{type(exc).__name__}: {exc}"
            if code is None or code < 500:
                return _Outcome(row, "pending", reply)
            with contextlib.suppress(aiosmtplib.SMTPException):
                await client.rset()  # after a refusal the session stays usable for the next message
            return _Outcome(row, "ko", reply)

    def _pending_rows(self, outbox_ids: list[int]) -> list[OutboxMessage]:
        with session_scope() as session:
            stmt = select(OutboxMessage).where(OutboxMessage.id.in_(outbox_ids), OutboxMessage.status == "pending")
            rows = list(session.scalars(stmt.order_by(OutboxMessage.id)))
            session.expunge_all()
            return rows

    def _record(self, outcomes: list[_Outcome]) -> None:
        if not outcomes:
            return
        now = utcnow()
        with session_scope() as session:
            session.execute(update(OutboxMessage), [
                {"id": o.row.id, "status": o.status, "attempts": o.row.attempts + 1, "last_reply": o.reply[:2000],
                 "sent_at": now if o.status == "sent" else None}
                for o in outcomes
            ])
        for o in outcomes:
            o.row.attempts += 1
