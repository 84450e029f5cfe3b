"""Tables owned by the campaigns service (schema `campaigns`)."""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = "campaigns"


class Driver(OrgScoped, Timestamped, Base):
    """A fleet driver ("utilisateur" in the seed), addressed by campaigns."""

    __tablename__ = "drivers"
    __table_args__ = (UniqueConstraint("organisation_id", "matricule"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matricule: Mapped[str] = mapped_column(String(50))
    civilite: Mapped[str | None] = mapped_column(String(10))
    nom: Mapped[str] = mapped_column(String(120))
    prenom: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(320))
    code_postal: Mapped[str | None] = mapped_column(String(10))


class TestMail(OrgScoped, Base):
    """A one-off test e-mail written by a manager and sent to one driver through a workflow."""

    __tablename__ = "test_mails"
    __table_args__ = {"schema": SCHEMA}
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    driver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("core.users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.outbox.id", ondelete="SET NULL"))
    # Set when the recipient confirms reception through the mail's action link.
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
