"""Tables owned by the removals service (schema `removals`).

Requesters (organisation kind "tracker") own vehicles, requests and mandates; deposers (kind "deposer") are
reached through their account row (distributor code, notification e-mail). One mandate per vehicle of a request.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = "removals"
OPEN_STATUSES = ("nouvelle", "prevenu", "acceptee")


class Account(Timestamped, Base):
    """Removal details of an organisation: its distributor code ("Code distributeur"), and for a deposer the
    address its notifications go to. Requesters keep their request counter here (#N per requester)."""

    __tablename__ = "accounts"
    __table_args__ = {"schema": SCHEMA}

    organisation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("core.organisations.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    last_request_no: Mapped[int] = mapped_column(Integer, default=0)
    # A requester's rule for its files: «Lieu de dépose» and «Date de dépose souhaitée» required (the seed: free).
    place_date_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class TrackedVehicle(OrgScoped, Timestamped, Base):
    """A requester's equipped vehicle and its tracker subscription ("N° d'abonnement").

    A VIN is registered once across the registry: a box subscription belongs to one account.
    """

    __tablename__ = "vehicles"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), unique=True)
    marque: Mapped[str] = mapped_column(String(80))
    modele: Mapped[str] = mapped_column(String(120))
    subscription_no: Mapped[str] = mapped_column(String(30))
    # «Emplacement déclaré»: where the box sits in the vehicle, as declared at its installation.
    declared_location: Mapped[str | None] = mapped_column(String(60))
    subscription_status: Mapped[str] = mapped_column(String(10), default="active")  # active | closed
    # "Dépose informatique": when and with which box the subscription was closed.
    closed_on: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    box_digits: Mapped[str | None] = mapped_column(String(7))


class RemovalRequest(OrgScoped, Base):
    """"Demande de dépose" #N of a requester."""

    __tablename__ = "requests"
    __table_args__ = (UniqueConstraint("organisation_id", "number"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    tracking_email: Mapped[str] = mapped_column(String(320))
    # Other recipients of the requester's alerts, besides the tracking address (as in the seed's example mail).
    alert_emails: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    description: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Mandate(OrgScoped, Base):
    """One vehicle of a request, addressed to one deposer; `status` is the read model of its workflow."""

    __tablename__ = "mandates"
    __table_args__ = (
        UniqueConstraint("request_id", "vehicle_id"),
        # A vehicle is in at most one open request: the database holds the rule even against a race.
        Index("uq_mandates_open_vehicle", "vehicle_id", unique=True,
              postgresql_where=text("status IN ('nouvelle', 'prevenu', 'acceptee')")),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.requests.id", ondelete="CASCADE"),
                                            index=True)
    vehicle_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.vehicles.id", ondelete="CASCADE"))
    deposer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("core.organisations.id", ondelete="CASCADE"),
                                            index=True)
    line: Mapped[int] = mapped_column(Integer)  # row of the uploaded file: the order of the recap
    vin: Mapped[str] = mapped_column(String(17), index=True)
    # Free fields in the seed (required only if the requester's account says so: `Account.place_date_required`).
    lieu: Mapped[str | None] = mapped_column(String(200))
    desired_date: Mapped[date | None] = mapped_column(Date)
    comment: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="nouvelle", index=True)
    # When the SMTP server accepted the deposer's mail of the request (Nouvelle → Prévenu): before that, the
    # deposer does not see the mandate.
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)  # motif du refus
    removal_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    box_digits: Mapped[str | None] = mapped_column(String(7))
    technician: Mapped[str | None] = mapped_column(String(200))
    workflow_id: Mapped[str] = mapped_column(String(80), unique=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class MailClaim(Base):
    """Who sends a grouped mail (a reminder per request and deposer, an alert per request and date): the first
    mandate whose timer fires claims it, so its siblings, firing at the same moment, send nothing."""

    __tablename__ = "mail_claims"
    __table_args__ = {"schema": SCHEMA}

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    mandate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.mandates.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingUpload(OrgScoped, Base):
    """A checked upload waiting for "Confirmer": the validated lines, kept server-side under a random id."""

    __tablename__ = "pending_uploads"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    tracking_email: Mapped[str] = mapped_column(String(320))
    description: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # Set by the first "Confirmer": a second one finds the request instead of creating another.
    request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.requests.id",
                                                                          ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
