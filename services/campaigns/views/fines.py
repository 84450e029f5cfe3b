"""Onglet "Amendes" of a driver's and a vehicle's record: the table, "Saisir une amende", "Exporter" (XLSX).

Recording an FPS fine not from the ANTAI, when the organisation has an activated Contraventions workflow, queues
its follow-up workflow (id "fine-<id>", started through `core.signals`): mail with the driver-space link, relances.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select
from sqlalchemy.orm import Session

from core.auth import CurrentUser, DbSession, Manager
from core.db import scoped
from core.excel import write_xlsx
from core.models import User
from core.settings import get_settings
from core.ui import flash, paginate, render_page
from services.campaigns.models import Driver, Fine, Vehicle, WorkflowDefinition
from services.campaigns.service import fines as service
from services.campaigns.service import fleet
from services.campaigns.service.driverworkflows import IncompleteDefinition, queue_fine_followup

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CLASSES = ("1ère classe", "2ème classe", "3ème classe", "4ème classe", "5ème classe")
TYPES = ("FPS", "Stationnement", "Excès de vitesse", "Feu rouge", "Inconnu")
PAIEMENTS = ("Minoré", "Normal", "Majoré")
FormField = Annotated[str, Form()]


@dataclass
class Record:
    """The record whose tab is shown: a driver ("utilisateurs") or a vehicle ("materiels")."""

    kind: str
    driver: Driver | None = None
    vehicle: Vehicle | None = None

    @property
    def id(self) -> int:
        row = self.driver or self.vehicle
        assert row is not None
        return row.id

    @property
    def path(self) -> str:
        return f"/{self.kind}/{self.id}/amendes"

    @property
    def name(self) -> str:
        if self.driver is not None:
            return f"{self.driver.prenom} {self.driver.nom}"
        assert self.vehicle is not None
        return self.vehicle.immatriculation


def _record(session: Session, user: User, kind: str, record_id: int) -> Record:
    """The organisation's driver or vehicle; 404 otherwise (another organisation's included)."""
    if kind == "utilisateurs":
        driver = fleet.get_driver(session, organisation_id=user.organisation_id, driver_id=record_id)
        if driver is None:
            raise HTTPException(404, "Cet utilisateur n'existe pas.")
        return Record(kind, driver=driver)
    vehicle = fleet.get_vehicle(session, organisation_id=user.organisation_id, vehicle_id=record_id)
    if vehicle is None:
        raise HTTPException(404, "Ce matériel n'existe pas.")
    return Record(kind, vehicle=vehicle)


def _query(user: User, record: Record) -> Select[Fine]:
    if record.driver is not None:
        return service.fines_query(user.organisation_id, driver_id=record.id)
    return service.fines_query(user.organisation_id, vehicle_id=record.id)


def _tab(request: Request, session: Session, user: User, record: Record, form: service.FineForm,
         errors: dict[str, str], *, page: int = 1, status: int = 200) -> HTMLResponse:
    vehicles = (fleet.driver_vehicles(session, organisation_id=user.organisation_id, driver_id=record.id)
                if record.driver is not None else [record.vehicle])
    followup = session.scalars(scoped(WorkflowDefinition, user.organisation_id)
                               .where(WorkflowDefinition.family == "contraventions",
                                      WorkflowDefinition.enabled.is_(True))
                               .order_by(WorkflowDefinition.updated_at.desc())).first()
    return render_page(request, "fines.html", status, user=user, record=record, form=form, errors=errors,
                       page=paginate(session, _query(user, record), page=page), vehicles=vehicles, followup=followup,
                       status_labels=service.STATUS_LABELS, sources=service.SOURCES, classes=CLASSES, types=TYPES,
                       paiements=PAIEMENTS)


def _new_form(record: Record) -> service.FineForm:
    form = service.FineForm()
    if record.vehicle is not None:
        form.immatriculation = record.vehicle.immatriculation
    return form


# --- routes: the same three on both records ---

@router.get("/utilisateurs/{driver_id}/amendes", response_class=HTMLResponse)
def driver_fines(request: Request, driver_id: int, user: CurrentUser, session: DbSession,
                 page: int = 1) -> HTMLResponse:
    record = _record(session, user, "utilisateurs", driver_id)
    return _tab(request, session, user, record, _new_form(record), {}, page=page)


@router.get("/materiels/{vehicle_id}/amendes", response_class=HTMLResponse)
def vehicle_fines(request: Request, vehicle_id: int, user: CurrentUser, session: DbSession,
                  page: int = 1) -> HTMLResponse:
    record = _record(session, user, "materiels", vehicle_id)
    return _tab(request, session, user, record, _new_form(record), {}, page=page)


@router.get("/utilisateurs/{driver_id}/amendes.xlsx")
def export_driver_fines(driver_id: int, user: CurrentUser, session: DbSession) -> Response:
    return _export(session, user, _record(session, user, "utilisateurs", driver_id))


@router.get("/materiels/{vehicle_id}/amendes.xlsx")
def export_vehicle_fines(vehicle_id: int, user: CurrentUser, session: DbSession) -> Response:
    return _export(session, user, _record(session, user, "materiels", vehicle_id))


@router.post("/utilisateurs/{driver_id}/amendes", response_class=HTMLResponse)
def record_driver_fine(request: Request, driver_id: int, user: Manager, session: DbSession,
                       numero: FormField = "", date_infraction: FormField = "", immatriculation: FormField = "",
                       classe: FormField = "", type_amende: FormField = "", paiement: FormField = "",
                       source: FormField = "Ajout manuel", montant: FormField = "") -> Response:
    record = _record(session, user, "utilisateurs", driver_id)
    form = service.FineForm(numero, date_infraction, immatriculation, classe, type_amende, paiement, source, montant)
    return _submit(request, session, user, record, form)


@router.post("/materiels/{vehicle_id}/amendes", response_class=HTMLResponse)
def record_vehicle_fine(request: Request, vehicle_id: int, user: Manager, session: DbSession,
                        numero: FormField = "", date_infraction: FormField = "", classe: FormField = "",
                        type_amende: FormField = "", paiement: FormField = "", source: FormField = "Ajout manuel",
                        montant: FormField = "") -> Response:
    record = _record(session, user, "materiels", vehicle_id)
    assert record.vehicle is not None  # the vehicle's tab records the vehicle's fines: its plate, not a posted one
    form = service.FineForm(numero, date_infraction, record.vehicle.immatriculation, classe, type_amende, paiement,
                            source, montant)
    return _submit(request, session, user, record, form)


# --- behind the routes ---

def _export(session: Session, user: User, record: Record) -> Response:
    fines = list(session.scalars(_query(user, record)))
    data = write_xlsx(service.FINE_HEADERS, service.export_rows(session, fines), sheet_title="Amendes")
    filename = f"amendes-{'utilisateur' if record.driver is not None else 'materiel'}-{record.id}.xlsx"
    return Response(data, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _submit(request: Request, session: Session, user: User, record: Record,
            form: service.FineForm) -> Response:
    values, errors = service.validate_fine(session, organisation_id=user.organisation_id, form=form)
    if record.driver is not None and "immatriculation" not in errors and values.get("driver_id") != record.id:
        errors["immatriculation"] = "Ce matériel n'est pas affecté à cet utilisateur."
    if errors:
        return _tab(request, session, user, record, form, errors, status=422)
    fine = service.create_fine(session, user=user, values=values)
    flash(request, f"L'amende N° {fine.numero} est enregistrée.")
    _follow_up(request, session, fine)
    return RedirectResponse(record.path, status_code=303)


def _follow_up(request: Request, session: Session, fine: Fine) -> None:
    """Queue the fine's follow-up workflow when one applies (commits the fine in every case) and say so."""
    definition = service.followup_definition(session, fine)
    driver = session.get(Driver, fine.driver_id) if definition is not None and fine.driver_id else None
    if definition is None or driver is None or not driver.email:
        session.commit()
        if reason := service.no_followup_reason(fine):
            flash(request, reason)
        elif driver is not None:
            flash(request, "Adresse mail manquante dans les infos du conducteur : aucun workflow de suivi.", "error")
        return
    try:
        with session.begin_nested():  # a follow-up that cannot start leaves the fine recorded, without it
            queue_fine_followup(session, get_settings(), fine=fine, driver=driver, definition=definition)
    except IncompleteDefinition as exc:
        session.commit()
        flash(request, f"{exc} Aucun suivi lancé.", "error")
        return
    session.commit()
    flash(request, f"Workflow de suivi lancé : « {definition.name} ».")
