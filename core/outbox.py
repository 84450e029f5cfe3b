"""The outbox: every outgoing mail is a row first, then sent once by `send_outbox_message`."""

import hashlib
import hmac
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import OutboxMessage
from core.settings import Settings

STATUS_LABELS = {"pending": "En attente", "sent": "Envoyé", "ko": "KO"}


class HeaderInjection(ValueError):
    """A CR or LF in a header value: refused before anything is written or sent."""


class TemporarySmtpError(Exception):
    """4xx or connection trouble: the activity raises it so Temporal retries with backoff."""


@dataclass(frozen=True)
class SendResult:
    outbox_id: int
    status: str  # "sent" | "ko"
    reply: str


def _check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"Retour à la ligne interdit dans l'en-tête {name} : {value!r}")
    return value


def message_id_for(key: str, settings: Settings) -> str:
    """Deterministic Message-ID: the same logical message always carries the same id; keyed with the
    installation's secret so two installations (or a reset database) never reuse each other's ids."""
    digest = hmac.new(settings.secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]
    return f"<{digest}@{settings.mail_domain}>"


def enqueue(session: Session, *, settings: Settings, organisation_id: int, key: str, to: list[str],
            subject: str, text: str, html: str | None = None, cc: list[str] | None = None) -> int:
    """Write the message once per `key` (a retried producer gets the existing row's id)."""
    for address in [*to, *(cc or [])]:
        _check_header("To/Cc", address)
    _check_header("Subject", subject)
    row = session.execute(
        insert(OutboxMessage)
        .values(organisation_id=organisation_id, key=key, message_id=message_id_for(key, settings),
                sender=settings.mail_from, recipients=to, cc=cc or [], subject=subject, text_body=text,
                html_body=html, attachments=[], status="pending", attempts=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(OutboxMessage.id)
    ).first()
    if row is not None:
        return int(row[0])
    return int(session.scalars(select(OutboxMessage.id).where(OutboxMessage.key == key)).one())


def build_email(row: OutboxMessage) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _check_header("From", row.sender)
    msg["To"] = _check_header("To", ", ".join(row.recipients))
    if row.cc:
        msg["Cc"] = _check_header("Cc", ", ".join(row.cc))
    msg["Subject"] = _check_header("Subject", row.subject)
    msg["Message-ID"] = row.message_id
    msg["Date"] = formatdate(localtime=False)
    msg.set_content(row.text_body)
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html")
    return msg


async def smtp_send(settings: Settings, msg: EmailMessage) -> str:
    """One SMTP transaction; returns the server's final reply. Raises aiosmtplib errors as they come."""
    context = ssl.create_default_context() if settings.smtp_starttls else None
    _errors, reply = await aiosmtplib.send(
        msg,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls=settings.smtp_starttls,
        tls_context=context,
        timeout=settings.smtp_timeout_seconds,
    )
    return reply
