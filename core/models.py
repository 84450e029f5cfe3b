"""Tables shared by every service (schema `core`): organisations, people, keys, links, outbox, signals."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = {"schema": "core"}


class Organisation(Timestamped, Base):
    __tablename__ = "organisations"
    __table_args__ = SCHEMA

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Which domain this organisation is a client of ("fleet", "broker", "tracker", "dealer").
    kind: Mapped[str] = mapped_column(String(30), default="fleet")


class User(OrgScoped, Timestamped, Base):
    """A manager (or a partner's extranet user) who logs into the service UIs."""

    __tablename__ = "users"
    __table_args__ = SCHEMA

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default="manager")
    is_active: Mapped[bool] = mapped_column(default=True)


class ApiKey(OrgScoped, Timestamped, Base):
    """Partner key for the JSON APIs: only a SHA-256 of the (high-entropy) secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = SCHEMA

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(40), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsedActionLink(Base):
    """Single-use ledger of action links: a token id is inserted once, when its POST acts."""

    __tablename__ = "used_action_links"
    __table_args__ = SCHEMA

    jti: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PasswordResetRequest(Base):
    """One «Mot de passe oublié ?» request, known address or not: what the per-address and per-client rate limits
    count (`core.passwordreset`). The link itself is a signed token; its single use is a `UsedActionLink` row."""

    __tablename__ = "password_reset_requests"
    __table_args__ = (Index("ix_password_reset_requests_email", "email", "requested_at"),
                      Index("ix_password_reset_requests_client", "client", "requested_at"), SCHEMA)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))  # as typed, lower-cased
    client: Mapped[str] = mapped_column(String(100))  # the caller's IP address
    # None: no such active user (and no mail sent).
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkflowSignal(OrgScoped, Base):
    """A start or a signal for a workflow (or both: signal-with-start), written in the transaction of the change it
    follows, delivered after commit by the relay (`core.signals`): the change never waits for Temporal and is never
    lost by it."""

    __tablename__ = "workflow_signals"
    __table_args__ = (Index("ix_workflow_signals_pending", "task_queue", "id", postgresql_where=text(
        "delivered_at IS NULL")), CheckConstraint("signal IS NOT NULL OR start IS NOT NULL", name="signal_or_start"),
        SCHEMA)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200))
    signal: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # Which worker fleet delivers it (the workflow's task queue).
    task_queue: Mapped[str] = mapped_column(String(100))
    # `core.temporal.StartSpec` as JSON: start the workflow with it (before the signal, if any).
    start: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(OrgScoped, Base):
    """One row per logical message; the send activity reads it, sends it once, records the reply."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("key"), SCHEMA)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Business key of the logical message ("test-mail-12", "campaign-3-driver-40"): a retried
    # producer finds its row instead of writing a second one.
    key: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSONB)
    cc: Mapped[list[str]] = mapped_column(JSONB, default=list)
    bcc: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")  # envelope only, no header
    reply_to: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    # [{"filename", "content_type", "storage_key"}]: files stay out of workflow payloads.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # The MIME message as `build_email` makes it, without its Date (added when it is sent), built when the row is
    # written so that bulk senders only send bytes; NULL: the sender builds it (attachments, or a row it refuses).
    # Deferred: only the senders load it.
    mime: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
