"""Amendes (FPS): record a fine, decide its follow-up, and the driver's payment declaration."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.db import scoped, utcnow
from core.excel import parse_date
from core.models import User
from core.ui import paris_date, today_paris
from services.campaigns.models import Driver, Fine, FineProof, OdometerReading, Vehicle, WorkflowDefinition
from services.campaigns.service.driverrecords import asking_workflow
from services.campaigns.service.fleet import normalise_plate
from services.campaigns.service.workflowdefs import enabled_contraventions_definition

SOURCES = ("Ajout manuel", "Antai")
FOLLOWED_TYPE = "FPS"  # "Type" of the fines a Contraventions workflow follows up ("concerne la gestion des FPS")
STATUS_LABELS = {"en_cours": "En cours", "valide": "Validé", "termine": "Terminé", "annule": "Annulé"}
# "Paiement" is the payment date, as in the seed's table; "Tarif" the free field (minoré, normal, majoré).
FINE_HEADERS = ["N° amende", "Date", "Immatriculation", "Conducteur", "Classe", "Type", "Tarif", "Source",
                "Montant", "Paiement", "Statut"]
PROOF_MAX_BYTES = 5 * 1024 * 1024
MAX_LENGTHS = {"numero": 60, "classe": 40, "type_amende": 80, "paiement": 40}  # the columns' sizes
MAX_MONTANT = Decimal("99999999.99")  # Numeric(10, 2)
# What the first bytes of an accepted proof must be (the declared type is not trusted).
PROOF_SIGNATURES = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


@dataclass
class FineForm:
    numero: str = ""
    date_infraction: str = ""
    immatriculation: str = ""
    classe: str = ""
    type_amende: str = ""
    paiement: str = ""
    source: str = "Ajout manuel"
    montant: str = ""
    workflow_enabled: bool = True  # «Workflow activé» (only when entering a fine)
    workflow_definition_id: str = ""


def validate_fine(session: Session, *, organisation_id: int, form: FineForm,
                  fine_id: int | None = None) -> tuple[dict[str, object], dict[str, str]]:
    """Clean values and errors by field; the immatriculation must be a vehicle of the organisation (`fine_id`:
    the fine being edited, whose own number is not a duplicate)."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    numero = form.numero.strip()
    if not numero:
        errors["numero"] = "Le N° d'amende est obligatoire."
    elif len(numero) > MAX_LENGTHS["numero"]:
        errors["numero"] = f"Le N° d'amende dépasse {MAX_LENGTHS['numero']} caractères."
    elif session.scalars(scoped(Fine, organisation_id).where(Fine.numero == numero, Fine.id != (fine_id or 0))
                         ).first() is not None:
        errors["numero"] = "Une amende porte déjà ce numéro."
    values["numero"] = numero
    try:
        if not form.date_infraction.strip():
            raise ValueError("obligatoire (jj/mm/aaaa)")
        values["date_infraction"] = parse_date(form.date_infraction.strip())
    except ValueError as exc:
        errors["date_infraction"] = f"Date de l'amende : {exc}"
    try:
        plate = normalise_plate(form.immatriculation) if form.immatriculation.strip() else None
    except ValueError:  # not a plate at all: it cannot be one of the fleet's either
        plate = None
    vehicle = session.scalars(scoped(Vehicle, organisation_id).where(Vehicle.immatriculation == plate)).first() \
        if plate else None
    if not form.immatriculation.strip():
        errors["immatriculation"] = "L'immatriculation est obligatoire."
    elif vehicle is None:
        errors["immatriculation"] = f"Immatriculation inconnue dans votre parc : « {form.immatriculation.strip()} »."
    else:
        values["immatriculation"], values["vehicle_id"], values["driver_id"] = plate, vehicle.id, vehicle.driver_id
    if form.source not in SOURCES:
        errors["source"] = "Choisissez la source : Ajout manuel ou Antai."
    values["source"] = form.source
    try:
        montant = Decimal(form.montant.replace(",", ".").replace("€", "").strip()) if form.montant.strip() else None
        # NaN, infinities and what Numeric(10, 2) cannot hold are refused like any other typo.
        if montant is not None and not montant.is_finite():
            raise InvalidOperation
        montant = montant.quantize(Decimal("0.01")) if montant is not None else None
        if montant is not None and not 0 <= montant <= MAX_MONTANT:
            raise InvalidOperation
        values["montant"] = montant
    except InvalidOperation:
        errors["montant"] = "Montant invalide (exemple : 35,00)."
    for name in ("classe", "type_amende", "paiement"):
        values[name] = getattr(form, name).strip() or None
        if len(getattr(form, name).strip()) > MAX_LENGTHS[name]:
            errors[name] = f"{MAX_LENGTHS[name]} caractères au plus."
    return values, errors


def create_fine(session: Session, *, user: User, values: dict[str, object]) -> Fine:
    fine = Fine(organisation_id=user.organisation_id, created_by_id=user.id, **values)
    session.add(fine)
    session.flush()
    return fine


def is_fps(fine: Fine) -> bool:
    """A forfait post-stationnement: the only type of fine the Contraventions workflow follows up."""
    return (fine.type_amende or "").strip().upper() == FOLLOWED_TYPE


def no_followup_reason(fine: Fine) -> str | None:
    """Why this fine gets no follow-up whatever the workflows (French, for the manager), or None when it may."""
    if fine.source == "Antai":
        return "Amende gérée par l'ANTAI : aucun workflow de suivi."
    if not is_fps(fine):
        typed = (fine.type_amende or "").strip()
        kind = f"de type « {typed} »" if typed else "sans type"
        return f"Amende {kind} : aucun workflow de suivi (seules les amendes de type FPS sont suivies)."
    if fine.driver_id is None:
        return "Matériel sans utilisateur : aucun workflow de suivi."
    return None


def followup_definition(session: Session, fine: Fine) -> WorkflowDefinition | None:
    """The activated Contraventions workflow that follows this fine up, or None: only FPS, never ANTAI fines
    (seed rules), and only with a driver to write to (`no_followup_reason` says which)."""
    if no_followup_reason(fine) is not None:
        return None
    return enabled_contraventions_definition(session, organisation_id=fine.organisation_id)


def fines_query(organisation_id: int, *, driver_id: int | None = None, vehicle_id: int | None = None) -> Select[Fine]:
    stmt = scoped(Fine, organisation_id)
    if driver_id is not None:
        stmt = stmt.where(Fine.driver_id == driver_id)
    if vehicle_id is not None:
        stmt = stmt.where(Fine.vehicle_id == vehicle_id)
    return stmt.order_by(Fine.date_infraction.desc(), Fine.id.desc())


def export_rows(session: Session, fines: list[Fine]) -> list[list[object]]:
    drivers = {d.id: d for d in session.scalars(select(Driver).where(Driver.id.in_({f.driver_id for f in fines})))}
    return [[f.numero, f.date_infraction, f.immatriculation,
             f"{drivers[f.driver_id].nom} {drivers[f.driver_id].prenom}" if f.driver_id in drivers else "",
             f.classe or "", f.type_amende or "", f.paiement or "", f.source,
             float(f.montant) if f.montant is not None else None, f.date_paiement,
             STATUS_LABELS.get(f.status or "", "-")] for f in fines]


def check_proof(data: bytes) -> str | None:
    """The real content type of an accepted proof, or None (wrong type, empty, too large)."""
    if not data or len(data) > PROOF_MAX_BYTES:
        return None
    return next((kind for magic, kind in PROOF_SIGNATURES.items() if data.startswith(magic)), None)


def declare_payment(session: Session, *, fine: Fine, paid_on: date, filename: str, data: bytes) -> str | None:
    """Store the payment date and proof; returns a French error instead when the input is refused."""
    if paid_on > today_paris():
        return "La date de paiement ne peut pas être dans le futur."
    if paid_on < fine.date_infraction:
        return "La date de paiement ne peut pas précéder la date de l'amende."
    kind = check_proof(data)
    if kind is None:
        return "Justificatif refusé : joignez un PDF, un JPEG ou un PNG de 5 Mo au plus."
    # Under the fine's row lock: a manager deleting it, or the same form posted twice, is decided one at a time.
    locked = session.scalars(select(Fine).where(Fine.id == fine.id).with_for_update()
                             .execution_options(populate_existing=True)).first()
    if locked is None:
        return "Cette amende a été supprimée par votre gestionnaire : rien à déclarer."
    if locked.date_paiement is not None:
        return (f"Le paiement de l'amende {locked.numero} est déjà déclaré "
                f"(payée le {paris_date(locked.date_paiement)}).")
    fine.date_paiement = paid_on
    fine.updated_at = utcnow()
    session.add(FineProof(fine_id=fine.id, filename=filename[-200:] or "justificatif", content_type=kind, data=data))
    return None


def unpaid_fines(session: Session, *, driver_id: int) -> list[Fine]:
    return list(session.scalars(select(Fine).where(Fine.driver_id == driver_id, Fine.date_paiement.is_(None))
                                .order_by(Fine.date_infraction)))


def record_reading(session: Session, *, vehicle: Vehicle, driver_id: int, km: int, on: date) -> str | None:
    """A new odometer reading (never below the last one); returns a French error instead when refused."""
    if vehicle.dernier_releve_km is not None and km < vehicle.dernier_releve_km:
        return f"Le kilométrage saisi ({km} km) est inférieur au dernier relevé ({vehicle.dernier_releve_km} km)."
    if on > today_paris():
        return "La date du relevé ne peut pas être dans le futur."
    session.add(OdometerReading(organisation_id=vehicle.organisation_id, vehicle_id=vehicle.id, driver_id=driver_id,
                                km=km, reading_date=on,
                                workflow_name=asking_workflow(session, driver_id=driver_id, family="compteurs")))
    vehicle.dernier_releve_km, vehicle.date_dernier_releve = km, on
    return None


def proofs_count(session: Session, fine_id: int) -> int:
    return session.scalar(select(func.count()).where(FineProof.fine_id == fine_id)) or 0
