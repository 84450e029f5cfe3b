"""The outbox: every outgoing mail is a row first, then sent once by `send_outbox_message`."""

import hashlib
import hmac
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from typing import Any, Protocol

import aiosmtplib
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from core import mime
from core.db import utcnow
from core.models import OutboxMessage
from core.settings import Settings

STATUS_LABELS = {"pending": "En attente", "sent": "Envoyé", "ko": "KO"}


class HeaderInjection(ValueError):
    """A CR or LF in a header value: refused before anything is written or sent."""


class TemporarySmtpError(Exception):
    """4xx or connection trouble: the activity raises it so Temporal retries with backoff."""


def _check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"Retour à la ligne interdit dans l'en-tête {name} : {value!r}")
    return value


def message_id_for(key: str, settings: Settings) -> str:
    """Deterministic Message-ID: the same logical message always carries the same id; keyed with the
    installation's secret so two installations (or a reset database) never reuse each other's ids."""
    digest = hmac.new(settings.secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]
    return f"<{digest}@{settings.mail_domain}>"


@dataclass(frozen=True)
class NewMessage:
    key: str
    to: list[str]
    subject: str
    text: str
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)  # envelope only: never in a header
    sender: str | None = None  # None: the installation's MAIL_FROM
    reply_to: str | None = None
    # [{"filename", "content_type", "storage_key"}]: the sender loads the bytes (`Attachment`) when it builds the mail
    attachments: list[dict[str, str]] = field(default_factory=list)


def enqueue(session: Session, *, settings: Settings, organisation_id: int, key: str, to: list[str],
            subject: str, text: str, html: str | None = None, cc: list[str] | None = None) -> int:
    """Write the message once per `key` (a retried producer gets the existing row's id)."""
    message = NewMessage(key, to, subject, text, html, cc or [])
    return enqueue_many(session, settings=settings, organisation_id=organisation_id, messages=[message])[key]


# One statement per call whatever the number of messages: a column per array parameter. Short and with few
# parameters, psycopg parses it once (the multi-row VALUES of an executemany is parsed again for every batch: 40 ms
# per 500 rows, a quarter of a campaign batch's rendering).
_INSERT = text("""
    INSERT INTO core.outbox (organisation_id, key, message_id, sender, recipients, cc, bcc, reply_to, subject,
                             text_body, html_body, attachments, mime, status, attempts, created_at)
    SELECT :organisation_id, m.key, m.message_id, m.sender, CAST(m.recipients AS jsonb), CAST(m.cc AS jsonb),
           CAST(m.bcc AS jsonb), m.reply_to, m.subject, m.text_body, m.html_body, CAST(m.attachments AS jsonb), m.mime,
           'pending', 0, :created_at
      FROM unnest(CAST(:key AS text[]), CAST(:message_id AS text[]), CAST(:sender AS text[]),
                  CAST(:recipients AS text[]), CAST(:cc AS text[]), CAST(:bcc AS text[]), CAST(:reply_to AS text[]),
                  CAST(:subject AS text[]), CAST(:text_body AS text[]), CAST(:html_body AS text[]),
                  CAST(:attachments AS text[]), CAST(:mime AS bytea[]))
           WITH ORDINALITY AS m(key, message_id, sender, recipients, cc, bcc, reply_to, subject, text_body, html_body,
                                attachments, mime, n)
     ORDER BY m.n
        ON CONFLICT (key) DO NOTHING
    RETURNING key, id
""")
_JSON_COLUMNS = ("recipients", "cc", "bcc", "attachments")


def enqueue_many(session: Session, *, settings: Settings, organisation_id: int,
                 messages: list[NewMessage]) -> dict[str, int]:
    """Many messages in one statement; returns the outbox id of each key (existing rows are kept as they are)."""
    if not messages:
        return {}
    for m in messages:
        for address in [*m.to, *m.cc, *m.bcc, *(a for a in (m.sender, m.reply_to) if a)]:
            _check_header("To/Cc", address)
        _check_header("Subject", m.subject)
    columns: dict[str, list[Any]] = {name: [] for name in (
        "key", "message_id", "sender", "recipients", "cc", "bcc", "reply_to", "subject", "text_body", "html_body",
        "attachments", "mime")}
    for m in messages:
        row: dict[str, Any] = dict(
            key=m.key, message_id=message_id_for(m.key, settings), sender=m.sender or settings.mail_from,
            recipients=m.to, cc=m.cc, bcc=m.bcc, reply_to=m.reply_to, subject=m.subject, text_body=m.text,
            html_body=m.html, attachments=m.attachments)
        row["mime"] = _prebuilt(row)  # built here, by the producer, not while sending
        for name, values in columns.items():
            values.append(json.dumps(row[name]) if name in _JSON_COLUMNS else row[name])
    inserted = session.execute(_INSERT, {"organisation_id": organisation_id, "created_at": utcnow(), **columns})
    ids = {key: int(outbox_id) for key, outbox_id in inserted}
    if missing := [m.key for m in messages if m.key not in ids]:  # written before: a retried producer
        found = session.execute(select(OutboxMessage.key, OutboxMessage.id).where(OutboxMessage.key.in_(missing)))
        ids.update((key, int(outbox_id)) for key, outbox_id in found)
    return ids


def _header(value: str) -> str:
    """RFC 2047-encode non-ASCII header text (accents in subjects and names)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


@lru_cache(maxsize=4096)
def _address(value: str) -> str:
    if "<" not in value:
        return value  # a bare address: nothing to encode (and parsing is the costly part)
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


class MailRow(Protocol):
    """What `build_email` reads of an outbox row (an `OutboxMessage`, or the values about to be written)."""

    @property
    def id(self) -> int | None: ...
    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def cc(self) -> list[str]: ...
    @property
    def reply_to(self) -> str | None: ...
    @property
    def subject(self) -> str: ...
    @property
    def text_body(self) -> str: ...
    @property
    def html_body(self) -> str | None: ...
    @property
    def message_id(self) -> str: ...
    @property
    def attachments(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class _Values:
    """A row's values before it is written (the id is not known yet)."""

    sender: str
    recipients: list[str]
    cc: list[str]
    reply_to: str | None
    subject: str
    text_body: str
    html_body: str | None
    message_id: str
    attachments: list[dict[str, Any]]
    id: int | None = None


def _prebuilt(values: dict[str, Any]) -> bytes | None:
    """The row's message without its Date, or None when the sender must build it: a row with attachments (their
    bytes are loaded when it is sent) or one `build_email` refuses (the sender records the refusal as KO)."""
    if values["attachments"]:
        return None
    fields = _Values(**{name: values[name] for name in _Values.__dataclass_fields__ if name != "id"})
    try:
        return email_bytes(fields, dated=False)
    except HeaderInjection:
        return None


def message_bytes(row: OutboxMessage) -> bytes:
    """What the bulk sender sends for a row without attachments: its pre-built bytes with the Date of now (the
    header `build_email` puts last), or the message built now for a row written without them."""
    if row.mime is None:
        return email_bytes(row)
    headers, _, body = row.mime.partition(b"\n\n")  # headers never hold an empty line: the first one ends them
    return b"%s\nDate: %s\n\n%s" % (headers, formatdate(localtime=False).encode(), body)


def email_bytes(row: MailRow, attachments: Sequence[Attachment] = (), *, dated: bool = True) -> bytes:
    """`build_email(row, attachments, dated=dated).as_bytes()`, written by `core.mime` when the message has the
    common shape (the same bytes, but for the random MIME boundaries), by the `email` package otherwise."""
    fast = None if len(attachments) != len(row.attachments or []) else mime.message_bytes(  # build_email's checks
        sender=_address(_check_header("From", row.sender)),
        to=", ".join(_address(_check_header("To", a)) for a in row.recipients),
        cc=", ".join(_address(_check_header("Cc", a)) for a in row.cc) if row.cc else None,
        reply_to=_address(_check_header("Reply-To", row.reply_to)) if row.reply_to else None,
        subject=_check_header("Subject", row.subject), message_id=row.message_id,
        date=formatdate(localtime=False) if dated else None, text=row.text_body, html=row.html_body or None,
        attachments=[(a.content_type, _check_header("filename", a.filename), a.content) for a in attachments])
    return fast if fast is not None else build_email(row, attachments, dated=dated).as_bytes()


def build_email(row: MailRow, attachments: Sequence[Attachment] = (), *,
                dated: bool = True) -> MIMEMultipart | MIMEText:
    """The MIME message of an outbox row; `attachments` are the bytes its `attachments` name, loaded by the
    sender (a row that names files cannot be sent without them). `dated` False: without the Date header (the
    outbox's pre-built bytes, dated by `message_bytes` when they are sent).

    Built with the classic `email.mime` classes (compat32 policy): three times cheaper than
    `EmailMessage`, which matters when a campaign builds thousands of them.
    """
    if len(attachments) != len(row.attachments or []):
        raise ValueError(f"outbox {row.id}: {len(row.attachments)} pièce(s) jointe(s) attendue(s)")
    text = MIMEText(row.text_body, "plain", "utf-8")
    msg: MIMEMultipart | MIMEText = text
    if row.html_body:
        msg = MIMEMultipart("alternative")
        msg.attach(text)
        msg.attach(MIMEText(row.html_body, "html", "utf-8"))
    if attachments:
        body, msg = msg, MIMEMultipart("mixed")
        msg.attach(body)
        for item in attachments:
            maintype, _, subtype = item.content_type.partition("/")
            part = MIMEApplication(item.content, subtype or "octet-stream") if maintype == "application" \
                else MIMEApplication(item.content)
            part.add_header("Content-Disposition", "attachment", filename=_check_header("filename", item.filename))
            msg.attach(part)
    msg["From"] = _address(_check_header("From", row.sender))
    msg["To"] = ", ".join(_address(_check_header("To", a)) for a in row.recipients)
    if row.cc:
        msg["Cc"] = ", ".join(_address(_check_header("Cc", a)) for a in row.cc)
    if row.reply_to:
        msg["Reply-To"] = _address(_check_header("Reply-To", row.reply_to))
    msg["Subject"] = _header(_check_header("Subject", row.subject))
    msg["Message-ID"] = row.message_id
    if dated:
        msg["Date"] = formatdate(localtime=False)
    return msg


def envelope(row: OutboxMessage) -> tuple[str, list[str]]:
    """SMTP envelope sender and recipients, without re-parsing the built headers."""
    return parseaddr(row.sender)[1], [*row.recipients, *row.cc, *(row.bcc or [])]


async def smtp_send(settings: Settings, msg: Message, envelope: tuple[str, list[str]] | None = None) -> str:
    """One SMTP transaction; returns the server's final reply. Raises aiosmtplib errors as they come.
    `envelope` (sender, recipients), as `envelope(row)` gives it, carries the Bcc the headers do not."""
    context = ssl.create_default_context() if settings.smtp_starttls else None
    sender, recipients = envelope if envelope else (None, None)
    _errors, reply = await aiosmtplib.send(
        msg,
        sender=sender,
        recipients=recipients,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls=settings.smtp_starttls,
        tls_context=context,
        timeout=settings.smtp_timeout_seconds,
    )
    return reply


def smtp_client(settings: Settings) -> aiosmtplib.SMTP:
    """A connection to keep for many messages (bulk senders): connect, send, then `smtp_quit`."""
    return aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds,
                           start_tls=settings.smtp_starttls,
                           tls_context=ssl.create_default_context() if settings.smtp_starttls else None)


async def smtp_quit(client: aiosmtplib.SMTP) -> None:
    """QUIT if still connected; a connection that fails even that is just closed."""
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


# One statement for the whole group (half the cost of an executemany of the same rows). Only a pending row changes:
# a row another attempt already recorded as sent or KO keeps its outcome. The status test is written so that it
# filters the rows found by id and is never an index condition: a campaign has just written thousands of pending
# rows, the table's statistics do not know them yet, and the planner would otherwise read every pending row of the
# outbox through the status index for each group of 16 (3 ms per 5,000 pending rows, under every group).
_RECORD_OUTCOMES = text("""
    UPDATE core.outbox o
       SET status = g.status, attempts = o.attempts + 1, last_reply = g.reply, sent_at = g.sent_at
      FROM jsonb_to_recordset(CAST(:group AS jsonb)) AS g(id bigint, status text, reply text, sent_at timestamptz)
     WHERE o.id = g.id AND (o.status = 'pending') IS TRUE
""")


def record_outcomes(connection: Connection | Session, group: list[dict[str, Any]]) -> None:
    """The replies of a group of sends on their outbox rows, in one statement: each item {id, status (sent, ko or
    pending), reply, sent_at}; a row already recorded as sent or KO keeps its outcome."""
    connection.execute(_RECORD_OUTCOMES, {"group": json.dumps(group)})
