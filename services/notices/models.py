"""Tables owned by the notices service (schema `notices`): the reference data the notices are made from.

Relais is not the broker's accounting system: legal entities («Entité juridique»), clients («Dossier»), contracts
and premium receipts («quittances») are pushed here (Excel import, partner API, demo) and read by the runs. The
documents table keeps each notice's PDF as sent, once and immutable (a trigger refuses any UPDATE).
"""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = "notices"
STATUS_LETTERS = ("C", "D", "P")  # client «Statut», the run's «Filtre d'impression 'C/D/P'»
COLLECTIONS = {"confie": "Confié", "direct": "Direct"}  # «Encaissement»
RECEIPT_TYPES = {"terme": "Terme", "comptant": "Comptant"}  # «Quittances»
Money = Numeric(12, 2)


class LegalEntity(OrgScoped, Timestamped, Base):
    """«Entité juridique»: a company of the broker, whose letterhead heads its notices, numbered on their own."""

    __tablename__ = "legal_entities"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),
                      CheckConstraint("next_notice_no >= 1", name="next_notice_no_positive"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(20))  # how imports and the API name it ("LAMBERT")
    name: Mapped[str] = mapped_column(String(200))
    address1: Mapped[str] = mapped_column(String(200))
    address2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(10))
    town: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(30))
    fax: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(320))
    vat_number: Mapped[str | None] = mapped_column(String(30))  # None: "NON SOUMIS A TVA"
    letter_town: Mapped[str] = mapped_column(String(100))  # "<ville> le <date>"
    # «Avis d'échéance n°»: the number the next notice of this entity gets; only ever goes up (never reused).
    next_notice_no: Mapped[int] = mapped_column(Integer, default=1)


class Client(OrgScoped, Timestamped, Base):
    """A client record («fiche client»), keyed by its «Dossier»."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("organisation_id", "number"),
                      CheckConstraint("status IS NULL OR status IN ('C', 'D', 'P')", name="status_letter"),
                      {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[str] = mapped_column(String(20))  # «Dossier», also «N° Client» on the notice
    title: Mapped[str | None] = mapped_column(String(20))  # «Titre», normalised (M., Mme, Dr, M. et Mme, SARL…)
    last_name: Mapped[str] = mapped_column(String(120))
    first_name: Mapped[str | None] = mapped_column(String(120))
    address1: Mapped[str] = mapped_column(String(200))
    address2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(10))
    town: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320))
    notice_by_email: Mapped[bool] = mapped_column(Boolean, default=False)  # «AE par mail»
    account_manager: Mapped[str | None] = mapped_column(String(120))  # «Chargé clientèle»
    account_manager_email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str | None] = mapped_column(String(1))  # «Statut»: C, D or P
    no_solicitation: Mapped[bool] = mapped_column(Boolean, default=False)  # «Sans Pollicitation»


class Contract(OrgScoped, Timestamped, Base):
    """An insurance contract of a client, managed by one of the broker's legal entities."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("organisation_id", "number"),
                      CheckConstraint("notice_period_months BETWEEN 0 AND 12", name="notice_period"),
                      {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[str] = mapped_column(String(40))  # «N° de contrat»
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.clients.id", ondelete="CASCADE"),
                                           index=True)
    legal_entity_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.legal_entities.id",
                                                                        ondelete="RESTRICT"), index=True)
    insurer: Mapped[str] = mapped_column(String(120))  # «Compagnie»
    category: Mapped[str] = mapped_column(String(120))  # «Catégorie»
    observations: Mapped[str | None] = mapped_column(Text)
    # Renewed by tacit agreement: its annual notice carries the termination reminder (C. assur. L113-15-1).
    tacit_renewal: Mapped[bool] = mapped_column(Boolean, default=True)
    notice_period_months: Mapped[int] = mapped_column(Integer, default=2)  # «Préavis de résiliation»


class Receipt(OrgScoped, Timestamped, Base):
    """A premium receipt («quittance»): what a notice asks the client to pay, for one period of a contract."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("organisation_id", "number"),
                      CheckConstraint("period_end >= period_start", name="period_order"),
                      CheckConstraint("collection IN ('confie', 'direct')", name="collection"),
                      CheckConstraint("receipt_type IN ('terme', 'comptant')", name="receipt_type"),
                      CheckConstraint("total_ttc = premium_ht + taxes + fees", name="total"),
                      {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[str] = mapped_column(String(40))  # «N° de quittance»
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.contracts.id", ondelete="CASCADE"),
                                             index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    effect_date: Mapped[date] = mapped_column(Date, index=True)  # «Période d'effet» of the run
    entry_date: Mapped[date] = mapped_column(Date)  # «Période de saisie»
    debit_month: Mapped[date] = mapped_column(Date)  # «Période de débit»: first day of the month
    collection: Mapped[str] = mapped_column(String(10))  # «Encaissement»: confie | direct
    receipt_type: Mapped[str] = mapped_column(String(10))  # terme | comptant
    premium_ht: Mapped[Decimal] = mapped_column(Money)  # «Prime HT»
    taxes: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)  # «Frais» (accessoires)
    total_ttc: Mapped[Decimal] = mapped_column(Money)  # «Prime TTC» = HT + taxes + frais
    edition_date: Mapped[date | None] = mapped_column(Date)  # «date d'édition», stamped by a run («Oui»)


class NoticeDocument(OrgScoped, Base):
    """The PDF of one «Avis d'échéance» as sent: stored once, never changed (the database refuses any UPDATE).

    One row per (entity, notice number); `storage_key` is how mails and workflows name it (never the bytes).
    """

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("legal_entity_id", "notice_number"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    legal_entity_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.legal_entities.id"))
    notice_number: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.clients.id"), index=True)
    receipt_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.receipts.id"), index=True)
    storage_key: Mapped[str] = mapped_column(String(120), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
