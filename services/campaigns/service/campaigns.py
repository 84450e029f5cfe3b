"""Campagnes: create / edit while EN ATTENTE, launch once, archive, progress and result lists."""

from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped, utcnow
from core.models import User
from services.campaigns.models import (
    Campaign,
    CampaignRecipient,
    DistributionList,
    Driver,
    MailTemplate,
    WorkflowDefinition,
)

STATUS_LABELS = {"pending": "EN ATTENTE", "sending": "EN COURS ENVOI", "sent": "ENVOYE"}
KIND_LABELS = {"email": "Email", "workflow": "Workflow"}
RESULT_HEADERS = ["Nom Campagne", "Matricule", "Nom", "Prénom", "Email", "Statut", "Message"]


class CampaignRefused(Exception):
    """An action the campaign's status does not allow; the message is for the manager."""


@dataclass
class CampaignForm:
    name: str = ""
    list_id: int | None = None
    kind: str = "email"
    template_id: int | None = None
    workflow_definition_id: int | None = None


@dataclass
class Progress:
    total: int
    sent: int
    errors: int
    finished: bool

    @property
    def done(self) -> int:
        return self.sent + self.errors

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


def validate(session: Session, *, organisation_id: int, form: CampaignForm) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not form.name.strip():
        errors["name"] = "Le nom de la campagne est obligatoire."
    if form.list_id is None or get_scoped(session, DistributionList, form.list_id, organisation_id) is None:
        errors["list_id"] = "Choisissez une liste de diffusion."
    if form.kind not in KIND_LABELS:
        errors["kind"] = "Choisissez le type de campagne."
    elif form.kind == "email" and (
            form.template_id is None or get_scoped(session, MailTemplate, form.template_id, organisation_id) is None):
        errors["template_id"] = "Choisissez un modèle d'email."
    elif form.kind == "workflow":
        definition = get_scoped(session, WorkflowDefinition, form.workflow_definition_id, organisation_id) \
            if form.workflow_definition_id else None
        if definition is None:
            errors["workflow_definition_id"] = "Choisissez un workflow."
        elif definition.family == "contraventions":
            errors["workflow_definition_id"] = (
                f"Le workflow « {definition.name} » est de la famille Contraventions : il suit les amendes (FPS) "
                "dès leur saisie dans la fiche matériel ou utilisateur et ne peut pas servir dans une campagne. "
                "Choisissez un workflow d'une autre famille.")
        elif not definition.enabled:
            errors["workflow_definition_id"] = f"Le workflow « {definition.name} » n'est pas activé."
    return errors


def save(session: Session, *, user: User, form: CampaignForm, campaign: Campaign | None = None) -> Campaign:
    if campaign is None:
        campaign = Campaign(organisation_id=user.organisation_id, created_by_id=user.id, status="pending")
        session.add(campaign)
    else:
        if campaign.status != "pending":
            raise CampaignRefused("Une campagne lancée ne peut plus être modifiée.")
        campaign.updated_by_id, campaign.updated_at = user.id, utcnow()
    campaign.name, campaign.kind = form.name.strip(), form.kind
    campaign.list_id = form.list_id  # type: ignore[assignment]
    campaign.template_id = form.template_id if form.kind == "email" else None
    campaign.workflow_definition_id = form.workflow_definition_id if form.kind == "workflow" else None
    session.flush()
    return campaign


def campaigns_query(organisation_id: int, *, archived: bool, status: str | None) -> Select[Campaign]:
    stmt = scoped(Campaign, organisation_id).where(Campaign.archived.is_(archived))
    if status in STATUS_LABELS:
        stmt = stmt.where(Campaign.status == status)
    return stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())


def get_campaign(session: Session, *, organisation_id: int, campaign_id: int) -> Campaign | None:
    return get_scoped(session, Campaign, campaign_id, organisation_id)


def progress(session: Session, campaign: Campaign) -> Progress:
    counts = progress_by_campaign(session, [campaign.id])[campaign.id]
    return Progress(campaign.total, counts.get("sent", 0), counts.get("error", 0), campaign.status == "sent")


def progress_by_campaign(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Sent and error counts of many campaigns at once (the table's Envois / Liste columns)."""
    result: dict[int, dict[str, int]] = {i: {} for i in ids}
    rows = session.execute(
        select(CampaignRecipient.campaign_id, CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id.in_(ids)).group_by(CampaignRecipient.campaign_id, CampaignRecipient.state)
    )
    for campaign_id, state, count in rows:
        result[campaign_id][state] = count
    return result


def results_query(campaign: Campaign, state: str) -> Select[CampaignRecipient, Driver]:
    """The "Liste des envois réussis" (state sent) or "en erreur" (state error)."""
    return (select(CampaignRecipient, Driver).join(Driver, Driver.id == CampaignRecipient.driver_id)
            .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == state)
            .order_by(Driver.nom, Driver.prenom, CampaignRecipient.id))


def result_rows(session: Session, campaign: Campaign, state: str) -> list[list[object]]:
    return [[campaign.name, d.matricule, d.nom, d.prenom, r.email or "", r.status or "", r.message or ""]
            for r, d in session.execute(results_query(campaign, state))]


def claim_launch(session: Session, *, campaign: Campaign, user: User) -> None:
    """EN ATTENTE → EN COURS ENVOI, atomically: of two clicks, exactly one gets here."""
    claimed = session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == "pending", Campaign.archived.is_(False))
        .values(status="sending", launched_at=utcnow(), launched_by_id=user.id, workflow_id=f"campaign-{campaign.id}")
        .returning(Campaign.id)
    ).first()
    if claimed is None:
        raise CampaignRefused(f"La campagne « {campaign.name} » a déjà été lancée.")
    session.refresh(campaign)


def archive(session: Session, *, campaign: Campaign, user: User) -> None:
    if campaign.status == "sending":
        raise CampaignRefused("La campagne est en cours d'envoi : archivez-la une fois l'envoi terminé.")
    campaign.archived, campaign.updated_by_id, campaign.updated_at = True, user.id, utcnow()


def unarchive(session: Session, *, campaign: Campaign, user: User) -> None:
    """Back in the campaigns table, with the status it had."""
    if not campaign.archived:
        raise CampaignRefused(f"La campagne « {campaign.name} » n'est pas archivée.")
    campaign.archived, campaign.updated_by_id, campaign.updated_at = False, user.id, utcnow()
