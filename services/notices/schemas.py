"""JSON shapes of the notices partner API: what an accounting system pushes (clients, contracts, receipts) and reads.

Values are checked by the same rules as the Excel import (`service.records`): a batch with one refused value is
refused whole (422, each problem with its item and field).
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notices.service.records import MAX_BATCH

Text = str | None
ReceiptKind = Literal["quittance", "acompte_affecte", "acompte_libre", "appel_acomptes"]
KIND_HELP = ("Nature : quittance (choisie par « Quittances » Terme / Comptant), acompte_affecte, acompte_libre ou "
             "appel_acomptes (choisis par les cases « Acomptes » de l'édition)")
OUTSTANDING_HELP = ("Reste dû en euros (défaut 0). Une quittance due avant un acompte affecté de son contrat et pas "
                    "soldée met le contrat « en arriéré »")


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="Dossier (clé : un dossier déjà connu est mis à jour)", examples=["P5"])
    title: Text = Field(None, description="Titre : M., Mme, Mlle, M. et Mme, Dr, Me, SARL…", examples=["Dr"])
    last_name: str = Field(description="Nom", examples=["BARBEREAU"])
    first_name: Text = Field(None, description="Prénom", examples=["Catherine"])
    address1: str = Field(description="Adresse", examples=["1 avenue des sables"])
    address2: Text = Field(None, description="Complément d'adresse")
    postal_code: str = Field(description="Code postal (5 chiffres)", examples=["91350"])
    town: str = Field(description="Ville", examples=["CRIGNY"])
    email: Text = Field(None, description="Email : l'adresse où partent les avis", examples=["c.barbereau@example.org"])
    notice_by_email: bool = Field(False, description="AE par mail (avis d'échéance par mail)")
    account_manager: Text = Field(None, description="Chargé clientèle")
    account_manager_email: Text = Field(None, description="Adresse e-mail du chargé clientèle")
    status: Literal["C", "D", "P"] | None = Field(None, description="Statut (filtre d'impression C/D/P)")
    no_solicitation: bool = Field(False, description="Sans Pollicitation")


class ContractIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="N° de contrat (clé)", examples=["ES0690024410"])
    client_number: str = Field(description="Dossier du client (déjà enregistré)", examples=["P5"])
    entity_code: str = Field(description="Code de l'entité juridique qui gère le contrat", examples=["LAMBERT"])
    insurer: str = Field(description="Compagnie", examples=["Mutuelle du Rhône"])
    category: str = Field(description="Catégorie", examples=["Multirisques habitation"])
    observations: Text = Field(None, description="Observations")
    tacit_renewal: bool = Field(True, description="Renouvelé par tacite reconduction (rappel L113-15-1 sur l'avis)")
    notice_period_months: int | None = Field(None, ge=0, le=12, description="Préavis de résiliation en mois (2)")


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="N° de quittance (clé)", examples=["Q2027-000123"])
    contract_number: str = Field(description="N° du contrat (déjà enregistré)", examples=["ES0690024410"])
    period_start: date = Field(description="Période du")
    period_end: date = Field(description="Période au")
    effect_date: date | None = Field(None, description="Date d'effet (défaut : début de période)")
    entry_date: date | None = Field(None, description="Date de saisie (défaut : aujourd'hui)")
    debit_month: str | None = Field(None, description="Mois de débit, aaaa-mm (défaut : mois de la date d'effet)",
                                    examples=["2027-01"])
    collection: Literal["confie", "direct"] = Field(description="Encaissement : confié (au cabinet) ou direct")
    receipt_type: Literal["terme", "comptant"] = Field(description="Quittance de terme ou au comptant")
    premium_ht: Decimal = Field(description="Prime HT, en euros (2 décimales)", examples=["412.50"])
    taxes: Decimal | None = Field(None, description="Taxes (défaut 0)", examples=["37.13"])
    fees: Decimal | None = Field(None, description="Frais (défaut 0)", examples=["8.00"])
    total_ttc: Decimal | None = Field(None, description="Prime TTC = HT + taxes + frais (calculée si absente)")
    edition_date: date | None = Field(None, description="Date d'édition (absente : inchangée)")
    kind: ReceiptKind = Field("quittance", description=KIND_HELP)
    outstanding: Decimal | None = Field(None, description=OUTSTANDING_HELP, examples=["0.00"])
    is_proposal: bool = Field(False, description="Pollicitation : une proposition, éditée seulement si l'édition coche "
                                                 "« Pollicitation » (jamais pour un client « Sans Pollicitation »)")
    broker_advance: bool = Field(False, description="Avance cabinet : laissée de côté par « Sans édition des avances "
                                                    "Cabinet »")


class ClientBatch(BaseModel):
    items: list[ClientIn] = Field(min_length=1, max_length=MAX_BATCH)


class ContractBatch(BaseModel):
    items: list[ContractIn] = Field(min_length=1, max_length=MAX_BATCH)


class ReceiptBatch(BaseModel):
    items: list[ReceiptIn] = Field(min_length=1, max_length=MAX_BATCH)


class SaveOut(BaseModel):
    created: int = Field(description="Enregistrements créés")
    updated: int = Field(description="Enregistrements mis à jour")


class ProblemOut(BaseModel):
    index: int = Field(description="Position de l'élément refusé dans `items` (à partir de 0)")
    field: str | None = Field(description="Champ refusé")
    message: str


class RefusedOut(BaseModel):
    detail: list[ProblemOut] = Field(description="Chaque valeur refusée ; rien n'a été enregistré")


class EntityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str = Field(description="Raison sociale")
    address1: str
    address2: str | None
    postal_code: str
    town: str
    phone: str | None
    email: str | None
    vat_number: str | None = Field(description="N° de TVA intracommunautaire (absent : NON SOUMIS A TVA)")
    letter_town: str = Field(description="Ville de « <ville> le <date> »")
    next_notice_no: int = Field(description="N° du prochain avis d'échéance")


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str = Field(description="Dossier")
    title: str | None
    last_name: str
    first_name: str | None
    address1: str
    address2: str | None
    postal_code: str
    town: str
    email: str | None
    notice_by_email: bool = Field(description="AE par mail")
    account_manager: str | None
    account_manager_email: str | None
    status: str | None
    no_solicitation: bool


class ContractOut(BaseModel):
    id: int
    number: str
    client_id: int
    client_number: str
    entity_code: str
    insurer: str
    category: str
    observations: str | None
    tacit_renewal: bool
    notice_period_months: int


class ReceiptOut(BaseModel):
    id: int
    number: str
    contract_id: int
    contract_number: str
    client_number: str
    period_start: date
    period_end: date
    effect_date: date
    entry_date: date
    debit_month: str = Field(description="aaaa-mm")
    collection: str
    receipt_type: str
    premium_ht: Decimal
    taxes: Decimal
    fees: Decimal
    total_ttc: Decimal
    edition_date: date | None
    kind: str = Field(description=KIND_HELP)
    outstanding: Decimal = Field(description=OUTSTANDING_HELP)
    is_proposal: bool = Field(description="Pollicitation")
    broker_advance: bool = Field(description="Avance cabinet")


class NoticeOut(BaseModel):
    """A notice of the queue «Avis d'échéances par mail»."""

    id: int
    number: int
    client_number: str
    email: str
    status: str = Field(description="E, V, OK, KO, B ou A")
    status_label: str
    due_date: date
    created_at: datetime
    sent_at: datetime | None
    observations: str | None
    workflow_id: str


class NoticeActionIn(BaseModel):
    action: Literal["validate", "block", "resend"] = Field(description="Valider, Bloquer (motif obligatoire), Renvoyer")
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=1000)
    reason: str = Field("", max_length=2000)


class NoticeActionOut(BaseModel):
    id: int
    number: int | None
    accepted: bool
    refused: str | None = Field(description="Pourquoi l'action ne s'applique pas à cet avis (sinon null)")
