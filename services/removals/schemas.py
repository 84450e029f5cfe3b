"""JSON shapes of the removals partner API."""

from datetime import date, datetime

from pydantic import BaseModel, Field


class MandateOut(BaseModel):
    """A removal mandate addressed to the partner (one vehicle of a request)."""

    id: int
    request_no: int = Field(description="N° de la demande chez le demandeur (#N)")
    requester: str = Field(description="Demandeur")
    requester_code: str | None = Field(description="Code distributeur demandeur")
    marque: str
    modele: str
    vin: str
    subscription_no: str = Field(description="N° Abonnement")
    declared_location: str | None = Field(None, description="Emplacement déclaré : où se trouve le boîtier")
    lieu: str | None = Field(description="Lieu de dépose (champ libre)")
    desired_date: date | None = Field(description="Date souhaitée (champ libre)")
    comment: str | None
    status: str = Field(description="nouvelle | prevenu | acceptee | refusee | effectuee | annulee")
    status_label: str = Field(description="Statut, comme à l'écran : Prévenu, Acceptée…")
    reason: str | None = Field(description="Motif du refus")
    removal_date: datetime | None = Field(description="Date de dépose")
    box_digits: str | None = Field(description="7 derniers chiffres du numéro de boîtier")
    technician: str | None = Field(description="Nom du technicien")


class RefuseIn(BaseModel):
    reason: str = Field(description="Motif du refus (obligatoire)", examples=["Véhicule introuvable sur le parc"])


class ConfirmIn(BaseModel):
    removal_date: datetime = Field(description="Date de dépose (heure de Paris si aucun fuseau n'est donné)")
    box_digits: str = Field(description="7 derniers chiffres du numéro de boîtier", examples=["4512345"])
    technician: str = Field(description="Nom du technicien", examples=["Karim Benali"])


class TransitionOut(BaseModel):
    id: int
    vin: str
    status: str
    status_label: str
