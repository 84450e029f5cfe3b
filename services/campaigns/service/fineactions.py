"""What a manager does with a recorded fine: choose its follow-up when entering it («Workflow activé», which
Contraventions workflow), view it, edit or delete it while unpaid, open the driver's payment proof.

Edits and deletions are decided under a row lock on the fine: of a driver declaring the payment and a manager
deleting the fine, the one that commits first wins and the other finds the new state.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped, utcnow
from core.models import User
from core.settings import Settings
from core.ui import paris_date
from services.campaigns.models import Fine, FineProof, FollowUp, WorkflowDefinition
from services.campaigns.service import driverworkflows
from services.campaigns.service.fines import is_fps

EDITABLE = ("numero", "date_infraction", "immatriculation", "vehicle_id", "driver_id", "classe", "type_amende",
            "paiement", "source", "montant")
RUNNING = ("Un workflow de suivi est en cours pour cette amende : annulez-le dans « Workflows utilisateurs » "
           "avant de changer {what}.")


class FineLocked(Exception):
    """The fine cannot be changed any more (paid): the message is for the manager."""


@dataclass
class ProofInfo:
    """A payment proof without its bytes (what the pages list)."""

    id: int
    fine_id: int
    filename: str
    content_type: str
    uploaded_at: datetime


def contraventions_definitions(session: Session, *, organisation_id: int) -> list[WorkflowDefinition]:
    """The activated Contraventions workflows the manager can pick, the most recently updated first (the default)."""
    stmt = (scoped(WorkflowDefinition, organisation_id)
            .where(WorkflowDefinition.family == "contraventions", WorkflowDefinition.enabled.is_(True))
            .order_by(WorkflowDefinition.updated_at.desc(), WorkflowDefinition.id.desc()))
    return list(session.scalars(stmt))


def choose_followup(session: Session, *, organisation_id: int, enabled: bool,
                    definition_id: str) -> tuple[WorkflowDefinition | None, str | None]:
    """The Contraventions workflow picked for a new fine (None: «Workflow activé» off, or none is activated),
    or the French error for the field when the pick is not an activated Contraventions workflow of the organisation."""
    if not enabled:
        return None, None
    definitions = contraventions_definitions(session, organisation_id=organisation_id)
    picked = definition_id.strip()
    if not picked:
        if len(definitions) > 1:
            return None, "Choisissez le workflow Contraventions à appliquer à cette amende."
        return (definitions[0] if definitions else None), None
    chosen = next((d for d in definitions if str(d.id) == picked), None)
    if chosen is None:
        return None, ("Ce workflow n'est pas un workflow Contraventions activé : choisissez-en un autre ou "
                      "désactivez le suivi de cette amende.")
    return chosen, None


def get_fine(session: Session, *, organisation_id: int, fine_id: int) -> Fine | None:
    """One fine of the organisation, or None (another organisation's included)."""
    return get_scoped(session, Fine, fine_id, organisation_id)


def _locked(session: Session, fine: Fine) -> Fine:
    """The fine again, under a row lock, refreshed (a payment declared meanwhile is seen)."""
    return session.scalars(select(Fine).where(Fine.id == fine.id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def paid_message(fine: Fine, action: str) -> str:
    return f"L'amende N° {fine.numero} est réglée (paiement du {paris_date(fine.date_paiement)}) : {action}"


def edit_errors(fine: Fine, values: dict[str, object]) -> dict[str, str]:
    """While a follow-up runs, what it is about (the vehicle and so the driver, an FPS not from the ANTAI) stays."""
    if fine.status != "en_cours":
        return {}
    errors = {}
    if "immatriculation" in values and values["immatriculation"] != fine.immatriculation:
        errors["immatriculation"] = RUNNING.format(what="l'immatriculation")
    if values.get("source") != fine.source:
        errors["source"] = RUNNING.format(what="la source")
    probe = Fine(type_amende=values.get("type_amende"))
    if not is_fps(probe):
        errors["type_amende"] = RUNNING.format(what="le type (FPS)")
    return errors


def update_fine(session: Session, *, fine: Fine, user: User, values: dict[str, object]) -> dict[str, str]:
    """Apply the edited values to an unpaid fine (row lock); returns errors by field instead (nothing changed).
    Raises FineLocked when the fine was paid meanwhile."""
    fine = _locked(session, fine)
    if fine.date_paiement is not None:
        raise FineLocked(paid_message(fine, "elle ne peut plus être modifiée."))
    if errors := edit_errors(fine, values):
        return errors
    for name in EDITABLE:
        if name in values:
            setattr(fine, name, values[name])
    fine.updated_by_id, fine.updated_at = user.id, utcnow()
    return {}


def delete_fine(session: Session, settings: Settings, *, fine: Fine, by: str) -> str | None:
    """Delete an unpaid fine (row lock); a running follow-up is cancelled first (its workflow told through
    `core.signals` in the same transaction) and stays in the suivi. Returns the cancelled workflow's name.
    Raises FineLocked when the fine is paid."""
    fine = _locked(session, fine)
    if fine.date_paiement is not None:
        raise FineLocked(paid_message(fine, "elle ne peut pas être supprimée."))
    cancelled = None
    running = session.scalars(select(FollowUp).where(FollowUp.fine_id == fine.id, FollowUp.status == "en_cours")
                              .with_for_update()).first()
    if running is not None:
        driverworkflows.manager_action(session, settings, followup=running, action="annuler",
                                       by=f"{by} (amende supprimée)")
        cancelled = running.definition_name
    session.delete(fine)
    session.flush()
    return cancelled


def fine_followups(session: Session, *, fine_id: int) -> list[FollowUp]:
    """The fine's follow-ups, the latest first (one, unless it was restarted)."""
    return list(session.scalars(select(FollowUp).where(FollowUp.fine_id == fine_id)
                                .order_by(FollowUp.started_at.desc(), FollowUp.id.desc())))


def proofs_by_fine(session: Session, fine_ids: list[int]) -> dict[int, list[ProofInfo]]:
    """The payment proofs of these fines (without their bytes), the latest first."""
    rows = session.execute(select(FineProof.id, FineProof.fine_id, FineProof.filename, FineProof.content_type,
                                  FineProof.uploaded_at).where(FineProof.fine_id.in_(fine_ids))
                           .order_by(FineProof.uploaded_at.desc(), FineProof.id.desc()))
    proofs: dict[int, list[ProofInfo]] = {}
    for row in rows:
        proofs.setdefault(row.fine_id, []).append(ProofInfo(*row))
    return proofs


def get_proof(session: Session, *, organisation_id: int, fine_id: int, proof_id: int) -> FineProof | None:
    """A proof of one of the organisation's fines, or None."""
    stmt = (select(FineProof).join(Fine, Fine.id == FineProof.fine_id)
            .where(FineProof.id == proof_id, FineProof.fine_id == fine_id, Fine.organisation_id == organisation_id))
    return session.scalars(stmt).first()


def is_unpaid(fine: Fine) -> bool:
    return fine.date_paiement is None
