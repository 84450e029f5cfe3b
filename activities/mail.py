"""The send activity: reads one outbox row, sends it over SMTP once, records the reply."""

import asyncio

import aiosmtplib
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.db import session_scope, utcnow
from core.logging import log
from core.models import OutboxMessage
from core.outbox import HeaderInjection, build_email, envelope, smtp_send
from core.settings import Settings
from workflows.data.mail import SendResult


def smtp_code(exc: Exception) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return max(codes) if codes else None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    return None


class MailActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="send_mail")
    async def send_mail(self, outbox_id: int) -> SendResult:
        """Idempotent: a row already sent or KO is not sent again, whatever retried us."""
        row = await asyncio.to_thread(self._load, outbox_id)
        if row.status in ("sent", "ko"):
            return SendResult(outbox_id, row.status, row.last_reply or "")
        try:
            reply = await smtp_send(self.settings, build_email(row), envelope(row))
        except HeaderInjection as exc:
            await asyncio.to_thread(self._record, outbox_id, "ko", str(exc))
            return SendResult(outbox_id, "ko", str(exc))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            code = smtp_code(exc)
            reply = f"{code} {getattr(exc, 'message', '') or exc}" if code else f"{type(exc).__name__}: {exc}"
            if code is not None and 500 <= code < 600:
                # Permanent refusal: retrying would only annoy the server.
                await asyncio.to_thread(self._record, outbox_id, "ko", reply)
                log.warning("mail.refused", outbox_id=outbox_id, reply=reply)
                return SendResult(outbox_id, "ko", reply)
            await asyncio.to_thread(self._record, outbox_id, "pending", reply)
            log.info("mail.retry", outbox_id=outbox_id, reply=reply, attempt=activity.info().attempt)
            raise ApplicationError(f"SMTP temporairement indisponible : {reply}", type="TemporarySmtpError") from exc
        await asyncio.to_thread(self._record, outbox_id, "sent", reply)
        return SendResult(outbox_id, "sent", reply)

    def _load(self, outbox_id: int) -> OutboxMessage:
        with session_scope() as session:
            row = session.get(OutboxMessage, outbox_id)
            if row is None:
                raise ApplicationError(f"Message {outbox_id} absent de l'outbox", non_retryable=True)
            session.expunge(row)
            return row

    def _record(self, outbox_id: int, status: str, reply: str) -> None:
        with session_scope() as session:
            row = session.get(OutboxMessage, outbox_id, with_for_update=True)
            assert row is not None
            row.status = status
            row.attempts += 1
            row.last_reply = reply[:2000]
            if status == "sent":
                row.sent_at = utcnow()
