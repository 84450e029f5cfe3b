"""Tables owned by the notices service (schema `notices`): the reference data the notices are made from.

Relais is not the broker's accounting system: legal entities («Entité juridique»), clients («Dossier»), contracts
and premium receipts («quittances») are pushed here (Excel import, partner API, demo) and read by the runs. The
documents table keeps each notice's PDF as sent, once and immutable (a trigger refuses any UPDATE).
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = "notices"
STATUS_LETTERS = ("C", "D", "P")  # client «Statut», the run's «Filtre d'impression 'C/D/P'»
COLLECTIONS = {"confie": "Confié", "direct": "Direct"}  # «Encaissement»
RECEIPT_TYPES = {"terme": "Terme", "comptant": "Comptant"}  # «Quittances»
# What a receipt is: a premium receipt, or one of the three deposits the run's «Acomptes» checkboxes choose.
RECEIPT_KINDS = {"quittance": "Quittance", "acompte_affecte": "Acompte affecté", "acompte_libre": "Acompte libre",
                 "appel_acomptes": "Appel d'acomptes"}
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
    # «Confirmation manuelle des avis d'échéances à envoyer par mail»: off, a new notice goes E → V at once.
    manual_confirmation: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


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
                      CheckConstraint("kind IN ('quittance', 'acompte_affecte', 'acompte_libre', 'appel_acomptes')",
                                      name="kind"),
                      CheckConstraint("outstanding >= 0", name="outstanding"),
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
    # «Nature»: a «Quittance» (chosen by the run's «Quittances» Terme / Comptant), or a deposit (its «Acomptes»).
    kind: Mapped[str] = mapped_column(String(20), default="quittance", server_default="quittance")
    # «Reste dû» as the accounting system last sent it (0: settled, or not told). A «Quittance» still owing
    # something, due before a deposit of its contract, puts the contract «en arriéré».
    outstanding: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), server_default="0")
    # «Pollicitation»: an offer (proposal) to the client, edited only when the run asks for it.
    is_proposal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # «Avance cabinet»: the broker advanced the premium to the insurer; a run may leave these out.
    broker_advance: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


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


# ---------------------------------------------------------------------------------------------------------------
# The notices themselves: runs (Step 1), the queue (Step 2, statuses E/V/OK/KO/B), the sends, the mail robot.
# ---------------------------------------------------------------------------------------------------------------

# «Statut du PDF»: the seed's five letters, plus A for a notice cancelled with its receipt (its receipt may then be
# noticed again). Only the notice's workflow writes `Notice.status` (activities of `activities/notices.py`).
NOTICE_STATUSES = ("E", "V", "OK", "KO", "B", "A")


class NoticeText(OrgScoped, Timestamped, Base):
    """A letter text of the «Etat_text» zone, chosen for a run; managed on a settings page."""

    __tablename__ = "texts"
    __table_args__ = (UniqueConstraint("organisation_id", "name"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class NoticeRun(OrgScoped, Timestamped, Base):
    """One «Avis d'échéances» edition with «Mail»: its criteria, its PDFs, and the answer to «Marquer les avis comme
    édités ?». Driven by the run workflow (`avis-run-<org>-<id>`)."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint("status IN ('preparing', 'rendering', 'awaiting_answer', 'confirmed', "
                                      "'declined', 'expired', 'failed', 'empty')", name="run_status"),
                      {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    legal_entity_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.legal_entities.id"))
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the form as checked (dates ISO, amounts as text)
    text_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.texts.id"))
    letter_text: Mapped[str] = mapped_column(Text, default="")  # the «Etat_text» as it was when the run began
    fixed_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))  # «Le montant des frais fixes»
    # empty: «Mail» found no notice to make; the run ends there (no workflow, no question asked)
    status: Mapped[str] = mapped_column(String(20), default="preparing")
    planned: Mapped[int] = mapped_column(Integer, default=0)  # notices to make
    rendered: Mapped[int] = mapped_column(Integer, default=0)
    excluded: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(200), default="")  # «Utilisateur»
    workstation: Mapped[str | None] = mapped_column(String(200))  # «Poste»: the browser's address / agent
    answered_by_name: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunItem(Base):
    """One receipt a run considered: either a notice to make (with its PDF once rendered, kept here until «Oui»)
    or a client left out, with why («sans e-mail», «AE par mail non coché»…) for the paper list."""

    __tablename__ = "run_items"
    __table_args__ = (UniqueConstraint("run_id", "receipt_id"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.runs.id", ondelete="CASCADE"), index=True)
    receipt_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.receipts.id"))
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.clients.id"))
    excluded_reason: Mapped[str | None] = mapped_column(String(200))  # None: a notice to make
    notice_number: Mapped[int | None] = mapped_column(Integer)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)  # staged until «Oui» moves it into `documents`


class Notice(OrgScoped, Base):
    """A notice in the queue («Avis d'échéances par mail»): one per receipt and run, at most one live (not A) per
    receipt. `status` is written by its workflow only; channels record a `pending_action` the workflow applies."""

    __tablename__ = "notices"
    __table_args__ = (CheckConstraint("status IN ('E', 'V', 'OK', 'KO', 'B', 'A')", name="notice_status"),
                      CheckConstraint("pending_action IS NULL OR pending_action IN "
                                      "('validate', 'block', 'resend', 'cancel')", name="pending_action"),
                      Index("uq_notices_live_receipt", "receipt_id", unique=True,
                            postgresql_where=text("status <> 'A'")),
                      UniqueConstraint("legal_entity_id", "number"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.runs.id"), index=True)
    receipt_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.receipts.id"))
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.clients.id"), index=True)
    legal_entity_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.legal_entities.id"))
    document_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.documents.id"))
    number: Mapped[int] = mapped_column(Integer)  # «Avis d'échéance n°»
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(2), default="E", index=True)
    email: Mapped[str] = mapped_column(String(320))  # the client's «Email» when the notice was made
    due_date: Mapped[date] = mapped_column(Date, index=True)  # the receipt's effect date
    observations: Mapped[str | None] = mapped_column(Text)  # «Observations»: last SMTP reply, block reason…
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)  # «Dte. Impr.»
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(200), default="")  # «Utilisateur»
    workstation: Mapped[str | None] = mapped_column(String(200))  # «Poste»
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the robot's order
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)  # «Dte. Envoi»
    send_count: Mapped[int] = mapped_column(Integer, default=0)  # sends made (a «Renvoyer» makes another)
    # A channel's request, recorded under a row lock with the signal that tells the workflow (`core.signals`).
    pending_action: Mapped[str | None] = mapped_column(String(10))
    pending_reason: Mapped[str | None] = mapped_column(Text)
    pending_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    pending_by_name: Mapped[str | None] = mapped_column(String(200))
    pending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by the robot when it takes this notice to send it («envoi en cours»): a block is then refused.
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    alerted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the account manager's alert
    closed: Mapped[bool] = mapped_column(Boolean, default=False)  # its workflow has ended (no more actions)


class NoticeEvent(Base):
    """The history of a notice: every action and status change, with who and when (shown in «Détails»)."""

    __tablename__ = "notice_events"
    __table_args__ = ({"schema": SCHEMA},)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.notices.id", ondelete="CASCADE"),
                                           index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(200))  # a user's name, «Automate d'envoi», «Système»…
    action: Mapped[str] = mapped_column(String(30))  # created, validated, blocked, resent, sent, failed, …
    from_status: Mapped[str | None] = mapped_column(String(2))
    to_status: Mapped[str | None] = mapped_column(String(2))
    detail: Mapped[str | None] = mapped_column(Text)


class NoticeSend(Base):
    """One send of a notice by the robot: the address used, its outbox message, the SMTP reply. A «Renvoyer» makes
    a new one and keeps this."""

    __tablename__ = "notice_sends"
    __table_args__ = (UniqueConstraint("notice_id", "attempt"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.notices.id", ondelete="CASCADE"),
                                           index=True)
    attempt: Mapped[int] = mapped_column(Integer)  # 1 for the first send, 2 after a «Renvoyer»…
    email: Mapped[str] = mapped_column(String(320))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.outbox.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="sending")  # sending | OK | KO
    reply: Mapped[str | None] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(Integer, default=0)  # SMTP tries (4xx and connection errors retry)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RobotSettings(Timestamped, Base):
    """The «Automate d'envoi» of one organisation: the seed's settings, its mail template, and its live state."""

    __tablename__ = "robot_settings"
    __table_args__ = ({"schema": SCHEMA},)

    organisation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("core.organisations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    pause_ms: Mapped[int] = mapped_column(Integer, default=800)  # AE_WAIT_AFTER_EACH_OPERATION
    idle_ms: Mapped[int] = mapped_column(Integer, default=10_000)  # AE_WAIT_IF_NOTHING_TO_DO
    error_wait_ms: Mapped[int] = mapped_column(Integer, default=60_000)  # AE_WAIT_IF_ERROR
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)  # SMTP tries before KO (4xx, connection)
    sender_name: Mapped[str] = mapped_column(String(200), default="Service envoi mail")
    from_address: Mapped[str | None] = mapped_column(String(320))  # None: the installation's MAIL_FROM
    reply_to: Mapped[str | None] = mapped_column(String(320))
    bcc: Mapped[list[str]] = mapped_column(JSONB, default=list)  # only addresses of the organisation's domains
    alert_days: Mapped[int] = mapped_column(Integer, default=7)  # alert if still E, B or KO this many days before
    subject: Mapped[str] = mapped_column(Text, default="Avis d'échéance pour {Adr_Titre} {Adr_Nom} {Adr_Prenom}")
    html_body: Mapped[str] = mapped_column(Text, default="<p>Veuillez trouver ci-joint votre avis d'échéance.</p>")
    text_body: Mapped[str] = mapped_column(Text, default="Veuillez trouver ci-joint votre avis d'échéance.")
    # Live state, written by the robot's workflow: running | paused | error_wait | idle
    paused: Mapped[bool] = mapped_column(Boolean, default=False)  # «Suspendre» asked (the workflow follows)
    state: Mapped[str] = mapped_column(String(20), default="idle")
    state_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_day: Mapped[date | None] = mapped_column(Date)
    sent_today: Mapped[int] = mapped_column(Integer, default=0)


class ApiReply(Base):
    """The first answer to a partner call made with an `Idempotency-Key` whose answer is too long for the key's
    ledger row (`core.used_action_links`, same id): a retried call gets it back as it was."""

    __tablename__ = "api_replies"
    __table_args__ = ({"schema": SCHEMA},)

    jti: Mapped[str] = mapped_column(String(40), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("core.organisations.id", ondelete="CASCADE"),
                                                 index=True)
    answer: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
