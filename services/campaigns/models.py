"""Tables owned by the campaigns service (schema `campaigns`)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, OrgScoped, Timestamped, utcnow

SCHEMA = "campaigns"


def _user_fk() -> Mapped[int | None]:
    return mapped_column(BigInteger, ForeignKey("core.users.id", ondelete="SET NULL"))


class Authored(Timestamped):
    """Créé par / Créé le / Modifié par / Modifié le, as every seed table shows them."""

    created_by_id: Mapped[int | None] = _user_fk()
    updated_by_id: Mapped[int | None] = _user_fk()


class Driver(OrgScoped, Timestamped, Base):
    """A fleet driver ("utilisateur" in the seed)."""

    __tablename__ = "drivers"
    __table_args__ = (UniqueConstraint("organisation_id", "matricule"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matricule: Mapped[str] = mapped_column(String(50))
    civilite: Mapped[str | None] = mapped_column(String(10))
    nom: Mapped[str] = mapped_column(String(120))
    prenom: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(320))
    adresse: Mapped[str | None] = mapped_column(String(300))
    code_postal: Mapped[str | None] = mapped_column(String(10))
    ville: Mapped[str | None] = mapped_column(String(120))
    # Derived from the personal address's postal code (2A/2B for Corsica, 971–976 overseas).
    departement: Mapped[str | None] = mapped_column(String(3), index=True)
    responsable_nom: Mapped[str | None] = mapped_column(String(200))
    responsable_email: Mapped[str | None] = mapped_column(String(320))
    valideur_nom: Mapped[str | None] = mapped_column(String(200))
    valideur_email: Mapped[str | None] = mapped_column(String(320))
    code_groupe: Mapped[str | None] = mapped_column(String(50))
    code_societe: Mapped[str | None] = mapped_column(String(50))
    code_imputation: Mapped[str | None] = mapped_column(String(50))
    # Declared by the driver in the Espace Conducteur ("Informations" workflows).
    permis_numero: Mapped[str | None] = mapped_column(String(40))
    permis_date: Mapped[date | None] = mapped_column(Date)
    permis_categories: Mapped[str | None] = mapped_column(String(60))


class Vehicle(OrgScoped, Timestamped, Base):
    """A fleet vehicle ("matériel" in the seed)."""

    __tablename__ = "vehicles"
    __table_args__ = (UniqueConstraint("organisation_id", "immatriculation"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    immatriculation: Mapped[str] = mapped_column(String(20))
    type_materiel: Mapped[str | None] = mapped_column(String(20))  # VP, VU...
    marque: Mapped[str | None] = mapped_column(String(80))
    modele: Mapped[str | None] = mapped_column(String(120))
    gamme: Mapped[str | None] = mapped_column(String(200))
    loueur: Mapped[str | None] = mapped_column(String(120))
    mode_gestion: Mapped[str | None] = mapped_column(String(40))  # LLD, achat...
    fournisseur: Mapped[str | None] = mapped_column(String(120))
    date_fin: Mapped[date | None] = mapped_column(Date)
    duree_contrat_mois: Mapped[int | None] = mapped_column(Integer)
    driver_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="SET NULL"), index=True
    )
    futur_vehicule: Mapped[str | None] = mapped_column(String(200))
    dernier_releve_km: Mapped[int | None] = mapped_column(Integer)
    date_dernier_releve: Mapped[date | None] = mapped_column(Date)
    # «Situation» as the seed's list shows it ("Active"), with the date it has held since.
    situation: Mapped[str] = mapped_column(String(20), default="Active", server_default="Active")
    situation_date: Mapped[date | None] = mapped_column(Date)


class DistributionList(OrgScoped, Authored, Base):
    """"Liste de diffusion": filters resolved against the drivers at the time of use."""

    __tablename__ = "distribution_lists"
    __table_args__ = (UniqueConstraint("organisation_id", "name"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # {"departements": [...], "immatriculation": "inclure"|"exclure"|"", "valideur": ..., "responsable": ...,
    #  "code_groupe": {"mode": "inclure"|"exclure", "values": [...]}, "code_societe": ..., "code_imputation": ...}
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class MailTemplate(OrgScoped, Authored, Base):
    """"Modèle de mail": the name is never shown in the mail."""

    __tablename__ = "mail_templates"
    __table_args__ = (UniqueConstraint("organisation_id", "name"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)


class Campaign(OrgScoped, Authored, Base):
    """A campaign: statuses EN ATTENTE (pending) → EN COURS ENVOI (sending) → ENVOYE (sent)."""

    __tablename__ = "campaigns"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="email")  # email | workflow
    list_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.distribution_lists.id"))
    template_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.mail_templates.id"))
    workflow_definition_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(f"{SCHEMA}.workflow_definitions.id")
    )
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    launched_by_id: Mapped[int | None] = _user_fk()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Workflow campaigns: recipients who cannot answer (no vehicle for a reading, no address) were left out.
    leave_out_unable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class CampaignRecipient(Base):
    """One driver of a launched campaign, frozen at launch; its outcome is "Liste envoyés" or "en erreur"."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "driver_id"),
        Index("ix_campaign_recipients_campaign_state", "campaign_id", "state", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.campaigns.id", ondelete="CASCADE"))
    driver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="CASCADE"))
    # pending → sent | error
    state: Mapped[str] = mapped_column(String(10), default="pending")
    status: Mapped[str | None] = mapped_column(String(40))  # "Envoyé", "Mail manquant", "Erreur d'envoi"...
    message: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.outbox.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class TestMail(OrgScoped, Base):
    """A one-off test e-mail written by a manager and sent to one driver through a workflow."""

    __tablename__ = "test_mails"
    __table_args__ = {"schema": SCHEMA}
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    driver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = _user_fk()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("core.outbox.id", ondelete="SET NULL"))
    # Set when the recipient confirms reception through the mail's action link.
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkflowDefinition(OrgScoped, Authored, Base):
    """"Workflow": ordered Mail / Attente steps, snapshotted into each driver workflow at its start."""

    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("organisation_id", "name"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(20))  # compteurs | informations | contraventions | autres
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # [{"type": "mail", "name", "to": "utilisateur"|"responsable", "cc": ""|"utilisateur"|"responsable",
    #   "template_id"}, {"type": "attente", "name", "days"}]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)


class FollowUp(OrgScoped, Base):
    """Read model of one driver workflow (the "Workflows utilisateurs" follow-up page, "suivi")."""

    __tablename__ = "driver_workflows"
    __table_args__ = (UniqueConstraint("workflow_id"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200))
    campaign_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(f"{SCHEMA}.campaigns.id", ondelete="CASCADE"), index=True
    )
    # A deleted fine leaves its (cancelled) follow-up in the suivi, with its number as the reference.
    fine_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.fines.id", ondelete="SET NULL"))
    driver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="CASCADE"),
                                           index=True)
    definition_name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="en_cours", index=True)
    step_label: Mapped[str | None] = mapped_column(String(200))
    step_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_step_label: Mapped[str | None] = mapped_column(String(200))
    # The last Mail step that could not be sent (nobody to write to), shown on the suivi page beside the step.
    step_note: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_reason: Mapped[str | None] = mapped_column(String(300))


class Fine(OrgScoped, Authored, Base):
    """An FPS / amende, followed up by a Contraventions workflow unless it comes from the ANTAI."""

    __tablename__ = "fines"
    __table_args__ = (UniqueConstraint("organisation_id", "numero"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    numero: Mapped[str] = mapped_column(String(60))
    date_infraction: Mapped[date] = mapped_column(Date)
    immatriculation: Mapped[str] = mapped_column(String(20))
    vehicle_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.vehicles.id", ondelete="SET NULL"))
    driver_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="SET NULL"),
                                                  index=True)
    classe: Mapped[str | None] = mapped_column(String(40))
    type_amende: Mapped[str | None] = mapped_column(String(80))
    paiement: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20), default="Ajout manuel")  # "Ajout manuel" | "Antai"
    montant: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    status: Mapped[str | None] = mapped_column(String(20))  # en_cours | valide | termine (None: no workflow)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    date_paiement: Mapped[date | None] = mapped_column(Date)
    # «Workflow activé» as the manager left it when entering the fine (a follow-up starts only for an FPS).
    workflow_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class FineProof(Base):
    """The payment proof a driver uploaded (kept in PostgreSQL, passed to workflows by id only)."""

    __tablename__ = "fine_proofs"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fine_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.fines.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OdometerReading(OrgScoped, Base):
    """Every reading a driver declared (the vehicle keeps the last one)."""

    __tablename__ = "odometer_readings"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.vehicles.id", ondelete="CASCADE"),
                                            index=True)
    driver_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="SET NULL"))
    km: Mapped[int] = mapped_column(Integer)
    reading_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The Compteurs workflow that asked for it, when one was running (shown on the vehicle's record).
    workflow_name: Mapped[str | None] = mapped_column(String(200))


class DriverInfoEntry(OrgScoped, Base):
    """What a driver entered in the Espace Conducteur's «Mes informations» (licence, address), kept entry by entry:
    the driver's record shows who entered the current values and when."""

    __tablename__ = "driver_info_entries"
    __table_args__ = (Index("ix_driver_info_entries_driver_created", "driver_id", "created_at"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    driver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.drivers.id", ondelete="CASCADE"))
    permis_numero: Mapped[str | None] = mapped_column(String(40))
    permis_date: Mapped[date | None] = mapped_column(Date)
    permis_categories: Mapped[str | None] = mapped_column(String(60))
    adresse: Mapped[str | None] = mapped_column(String(300))
    code_postal: Mapped[str | None] = mapped_column(String(10))
    ville: Mapped[str | None] = mapped_column(String(120))
    # The Informations workflow that asked for it, when one was running.
    workflow_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
