"""Espace Conducteur, reached through {{lien_connexion}} (no password: the signed, expiring link is the key).

GET shows the driver's vehicle and what the workflows ask; each form's POST records the answer, closes the matching
running follow-ups as Validé and queues their workflows' signals, in one transaction (`core.signals`).
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import DbSession
from core.excel import parse_date
from core.linkpages import LINK_HEADERS
from core.links import LinkError, read_token
from core.settings import get_settings
from core.ui import render_page, today_paris
from services.campaigns.departements import departement_from_postal_code
from services.campaigns.links import SPACE_PATH, SPACE_PURPOSE
from services.campaigns.models import Driver, Fine, Vehicle
from services.campaigns.service.driverrecords import Informations, record_informations
from services.campaigns.service.driverspace import space_state
from services.campaigns.service.driverworkflows import driver_answered
from services.campaigns.service.fines import PROOF_MAX_BYTES, declare_payment, record_reading, unpaid_fines

router = APIRouter(prefix=SPACE_PATH, include_in_schema=False)
LICENCE_CATEGORIES = ("AM", "A1", "A2", "A", "B1", "B", "BE", "C1", "C1E", "C", "CE", "D1", "D1E", "D", "DE")


class SpaceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _driver(session: Session, token: str) -> Driver:
    try:
        link = read_token(token, SPACE_PURPOSE)
    except LinkError as exc:
        raise SpaceError(exc.status, exc.message) from exc
    driver = session.get(Driver, int(link.subject.removeprefix("driver-")))
    if driver is None:
        raise SpaceError(404, "Ce lien n'existe pas.")
    return driver


def _page(request: Request, session: Session, token: str, *, status: int = 200, message: str = "",
          errors: dict[str, str] | None = None) -> HTMLResponse:
    try:
        driver = _driver(session, token)
    except SpaceError as exc:
        return render_page(request, "link_page.html", exc.status, heading="Espace Conducteur", message=exc.message,
                           error=True, action_label=None)
    vehicles = list(session.scalars(select(Vehicle).where(Vehicle.driver_id == driver.id)
                                    .order_by(Vehicle.immatriculation)))
    state = space_state(session, driver_id=driver.id, vehicle_ids=[v.id for v in vehicles])
    response = render_page(request, "driver_space.html", status, driver=driver, vehicles=vehicles,
                           fines=unpaid_fines(session, driver_id=driver.id), state=state, message=message,
                           errors=errors or {}, today=today_paris(), categories=LICENCE_CATEGORIES,
                           proof_mb=PROOF_MAX_BYTES // (1024 * 1024), base=f"{SPACE_PATH}/{token}")
    response.headers.update(LINK_HEADERS)
    return response


def _done(request: Request, session: DbSession, token: str, driver: Driver, family: str, message: str,
          fine_id: int | None = None) -> HTMLResponse:
    """Record the answer, close the follow-ups waiting for it and queue their workflows' signals, in one
    transaction: the driver's answer never waits for Temporal."""
    driver_answered(session, get_settings(), driver_id=driver.id, family=family, fine_id=fine_id)
    session.commit()
    return _page(request, session, token, message=message)


@router.get("/{token}", response_class=HTMLResponse)
def space(request: Request, token: str, session: DbSession) -> HTMLResponse:
    return _page(request, session, token)


@router.post("/{token}/releve/{vehicle_id}", response_class=HTMLResponse)
def odometer(request: Request, token: str, vehicle_id: int, session: DbSession,
             km: Annotated[str, Form()] = "", releve_le: Annotated[str, Form()] = "") -> HTMLResponse:
    driver = _driver_or_404(session, token)
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None or vehicle.driver_id != driver.id:
        raise HTTPException(404, "Ce véhicule ne vous est pas affecté.")
    errors: dict[str, str] = {}
    value = int(km.replace(" ", "")) if km.replace(" ", "").isdigit() else None
    if value is None:
        errors[f"km-{vehicle.id}"] = "Saisissez le kilométrage compteur en chiffres (exemple : 45210)."
    try:
        on = parse_date(releve_le) if releve_le else today_paris()
    except ValueError as exc:
        errors[f"releve_le-{vehicle.id}"] = f"Date du relevé : {exc}."
        on = today_paris()
    if not errors and value is not None and (problem := record_reading(session, vehicle=vehicle, driver_id=driver.id,
                                                                        km=value, on=on)):
        errors[f"km-{vehicle.id}"] = problem
    if errors:
        return _page(request, session, token, status=422, errors=errors)
    return _done(request, session, token, driver, "compteurs",
                 f"Merci, votre relevé de {value} km pour {vehicle.immatriculation} est enregistré.")


@router.post("/{token}/informations", response_class=HTMLResponse)
def informations(request: Request, token: str, session: DbSession,
                 permis_numero: Annotated[str, Form()] = "", permis_date: Annotated[str, Form()] = "",
                 permis_categories: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
                 adresse: Annotated[str, Form()] = "", code_postal: Annotated[str, Form()] = "",
                 ville: Annotated[str, Form()] = "") -> HTMLResponse:
    driver = _driver_or_404(session, token)
    errors: dict[str, str] = {}
    numero = permis_numero.strip().upper()
    if not 6 <= len(numero) <= 20 or not numero.replace(" ", "").isalnum():
        errors["permis_numero"] = "Numéro de permis invalide (6 à 20 lettres et chiffres)."
    try:
        delivered = parse_date(permis_date)
        if delivered > today_paris():
            errors["permis_date"] = "La date de délivrance ne peut pas être dans le futur."
    except ValueError as exc:
        errors["permis_date"] = f"Date de délivrance : {exc}."
    if not permis_categories or any(c not in LICENCE_CATEGORIES for c in permis_categories):
        errors["permis_categories"] = "Cochez au moins une catégorie de permis."
    departement = departement_from_postal_code(code_postal.strip())
    if not adresse.strip() or not ville.strip():
        errors["adresse"] = "Adresse et ville sont obligatoires."
    if departement is None:
        errors["code_postal"] = "Code postal invalide (5 chiffres, France)."
    if errors:
        return _page(request, session, token, status=422, errors=errors)
    assert departement is not None
    record_informations(session, driver=driver, info=Informations(
        numero, delivered, ", ".join(c for c in LICENCE_CATEGORIES if c in permis_categories), adresse.strip(),
        code_postal.strip(), ville.strip(), departement))
    return _done(request, session, token, driver, "informations", "Merci, vos informations sont enregistrées.")


@router.post("/{token}/amendes/{fine_id}", response_class=HTMLResponse)
def fine_payment(request: Request, token: str, fine_id: int, session: DbSession,
                 date_paiement: Annotated[str, Form()] = "",
                 justificatif: Annotated[UploadFile | None, File()] = None) -> HTMLResponse:
    driver = _driver_or_404(session, token)
    fine = session.get(Fine, fine_id)
    if fine is None or fine.driver_id != driver.id:
        raise HTTPException(404, "Cette amende ne vous concerne pas.")
    data = justificatif.file.read(PROOF_MAX_BYTES + 1) if justificatif else b""  # one byte more: "too large"
    try:
        paid_on = parse_date(date_paiement)
    except ValueError as exc:
        return _page(request, session, token, status=422, errors={f"paiement-{fine.id}": f"Date de paiement : {exc}."})
    filename = (justificatif.filename or "") if justificatif else ""
    if problem := declare_payment(session, fine=fine, paid_on=paid_on, filename=filename, data=data):
        # Shown next to the fine's form, or above the page when the fine is no longer to pay (paid, deleted).
        listed = any(f.id == fine_id for f in unpaid_fines(session, driver_id=driver.id))
        return _page(request, session, token, status=422, errors={f"paiement-{fine_id}" if listed else "amendes":
                                                                  problem})
    return _done(request, session, token, driver, "contraventions",
                 f"Merci, le paiement de l'amende {fine.numero} est enregistré.", fine_id=fine.id)


def _driver_or_404(session: Session, token: str) -> Driver:
    try:
        return _driver(session, token)
    except SpaceError as exc:
        raise HTTPException(exc.status, exc.message) from exc
