"""Onglet "Amendes" of a driver's and a vehicle's record: the table, "Saisir une amende", "Exporter" (XLSX);
each fine's page, its edition and deletion while unpaid, and the driver's payment proof.

Recording an FPS fine not from the ANTAI with «Workflow activé» queues the follow-up the manager picked among the
activated Contraventions workflows (id "fine-<id>", started through `core.signals`): mail with the driver-space
link, relances.
"""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select
from sqlalchemy.orm import Session

from core.auth import CurrentUser, DbSession, Manager
from core.excel import write_xlsx
from core.models import User
from core.settings import get_settings
from core.ui import author_names, flash, paginate, render_page
from services.campaigns.models import Driver, Fine, Vehicle, WorkflowDefinition
from services.campaigns.service import fineactions, fleet
from services.campaigns.service import fines as service
from services.campaigns.service.driverworkflows import STATUS_LABELS as FOLLOWUP_LABELS
from services.campaigns.service.driverworkflows import IncompleteDefinition, queue_fine_followup

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CLASSES = ("1ère classe", "2ème classe", "3ème classe", "4ème classe", "5ème classe")
TYPES = ("FPS", "Stationnement", "Excès de vitesse", "Feu rouge", "Inconnu")
PAIEMENTS = ("Minoré", "Normal", "Majoré")
RECORD_KINDS = ("utilisateurs", "materiels")
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
    rows = paginate(session, _query(user, record), page=page)
    definitions = fineactions.contraventions_definitions(session, organisation_id=user.organisation_id)
    return render_page(request, "fines.html", status, user=user, record=record, form=form, errors=errors,
                       page=rows, vehicles=vehicles, definitions=definitions,
                       proofs=fineactions.proofs_by_fine(session, [f.id for f in rows.items]),
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
                       source: FormField = "Ajout manuel", montant: FormField = "", workflow_enabled: FormField = "",
                       workflow_definition_id: FormField = "") -> Response:
    record = _record(session, user, "utilisateurs", driver_id)
    form = service.FineForm(numero, date_infraction, immatriculation, classe, type_amende, paiement, source, montant,
                            workflow_enabled == "1", workflow_definition_id)
    return _submit(request, session, user, record, form)


@router.post("/materiels/{vehicle_id}/amendes", response_class=HTMLResponse)
def record_vehicle_fine(request: Request, vehicle_id: int, user: Manager, session: DbSession,
                        numero: FormField = "", date_infraction: FormField = "", classe: FormField = "",
                        type_amende: FormField = "", paiement: FormField = "", source: FormField = "Ajout manuel",
                        montant: FormField = "", workflow_enabled: FormField = "",
                        workflow_definition_id: FormField = "") -> Response:
    record = _record(session, user, "materiels", vehicle_id)
    assert record.vehicle is not None  # the vehicle's tab records the vehicle's fines: its plate, not a posted one
    form = service.FineForm(numero, date_infraction, record.vehicle.immatriculation, classe, type_amende, paiement,
                            source, montant, workflow_enabled == "1", workflow_definition_id)
    return _submit(request, session, user, record, form)


# --- one fine: its page, edition and deletion while unpaid, the payment proof ---

@router.get("/amendes/{fine_id}", response_class=HTMLResponse)
def fine_page(request: Request, fine_id: int, user: CurrentUser, session: DbSession,
              depuis: str = "") -> HTMLResponse:
    fine = _fine(session, user, fine_id)
    driver = (fleet.get_driver(session, organisation_id=user.organisation_id, driver_id=fine.driver_id)
              if fine.driver_id else None)
    return render_page(request, "fine.html", user=user, fine=fine, driver=driver, back=_back(fine, depuis),
                       depuis=_kind(depuis), followups=fineactions.fine_followups(session, fine_id=fine.id),
                       proofs=fineactions.proofs_by_fine(session, [fine.id]).get(fine.id, []),
                       authors=author_names(session, [fine]), status_labels=service.STATUS_LABELS,
                       followup_labels=FOLLOWUP_LABELS)


@router.get("/amendes/{fine_id}/modifier", response_class=HTMLResponse)
def edit_fine_page(request: Request, fine_id: int, user: Manager, session: DbSession,
                   depuis: str = "") -> Response:
    fine = _fine(session, user, fine_id)
    if not fineactions.is_unpaid(fine):
        flash(request, fineactions.paid_message(fine, "elle ne peut plus être modifiée."), "error")
        return RedirectResponse(f"/amendes/{fine.id}?depuis={_kind(depuis)}", status_code=303)
    form = service.FineForm(fine.numero, fine.date_infraction.strftime("%d/%m/%Y"), fine.immatriculation,
                            fine.classe or "", fine.type_amende or "", fine.paiement or "", fine.source,
                            f"{fine.montant:.2f}".replace(".", ",") if fine.montant is not None else "")
    return _edit_page(request, user, fine, form, {}, depuis)


@router.post("/amendes/{fine_id}/modifier", response_class=HTMLResponse)
def edit_fine(request: Request, fine_id: int, user: Manager, session: DbSession, numero: FormField = "",
              date_infraction: FormField = "", immatriculation: FormField = "", classe: FormField = "",
              type_amende: FormField = "", paiement: FormField = "", source: FormField = "Ajout manuel",
              montant: FormField = "", depuis: FormField = "") -> Response:
    fine = _fine(session, user, fine_id)
    form = service.FineForm(numero, date_infraction, immatriculation, classe, type_amende, paiement, source, montant)
    values, errors = service.validate_fine(session, organisation_id=user.organisation_id, form=form, fine_id=fine.id)
    try:
        errors = errors or fineactions.update_fine(session, fine=fine, user=user, values=values)
    except fineactions.FineLocked as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(f"/amendes/{fine.id}?depuis={_kind(depuis)}", status_code=303)
    if errors:
        session.rollback()
        return _edit_page(request, user, fine, form, errors, depuis, status=422)
    session.commit()
    flash(request, f"L'amende N° {fine.numero} est modifiée.")
    return RedirectResponse(f"/amendes/{fine.id}?depuis={_kind(depuis)}", status_code=303)


@router.post("/amendes/{fine_id}/supprimer")
def delete_fine(request: Request, fine_id: int, user: Manager, session: DbSession,
                depuis: FormField = "") -> Response:
    fine = _fine(session, user, fine_id)
    back, numero = _back(fine, depuis), fine.numero
    try:
        cancelled = fineactions.delete_fine(session, get_settings(), fine=fine, by=user.full_name)
    except fineactions.FineLocked as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(back, status_code=303)
    session.commit()
    flash(request, f"L'amende N° {numero} est supprimée."
                   + (f" Son workflow de suivi « {cancelled} » est annulé." if cancelled else ""))
    return RedirectResponse(back, status_code=303)


@router.get("/amendes/{fine_id}/justificatifs/{proof_id}")
def fine_proof(fine_id: int, proof_id: int, user: CurrentUser, session: DbSession) -> Response:
    """The driver's payment proof, opened in the browser (its type was checked from its bytes at upload)."""
    proof = fineactions.get_proof(session, organisation_id=user.organisation_id, fine_id=fine_id, proof_id=proof_id)
    if proof is None:
        raise HTTPException(404, "Ce justificatif n'existe pas.")
    return Response(proof.data, media_type=proof.content_type, headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(proof.filename, safe='')}",
        "Cache-Control": "private, no-store"})


# --- behind the routes ---

def _export(session: Session, user: User, record: Record) -> Response:
    fines = list(session.scalars(_query(user, record)))
    data = write_xlsx(service.FINE_HEADERS, service.export_rows(session, fines), sheet_title="Amendes")
    filename = f"amendes-{'utilisateur' if record.driver is not None else 'materiel'}-{record.id}.xlsx"
    return Response(data, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _fine(session: Session, user: User, fine_id: int) -> Fine:
    fine = fineactions.get_fine(session, organisation_id=user.organisation_id, fine_id=fine_id)
    if fine is None:
        raise HTTPException(404, "Cette amende n'existe pas.")
    return fine


def _kind(depuis: str) -> str:
    return depuis if depuis in RECORD_KINDS else "materiels"


def _back(fine: Fine, depuis: str) -> str:
    """The Amendes tab the manager came from (the vehicle's unless he came from the driver's)."""
    if fine.driver_id and (depuis == "utilisateurs" or not fine.vehicle_id):
        return f"/utilisateurs/{fine.driver_id}/amendes"
    return f"/materiels/{fine.vehicle_id}/amendes" if fine.vehicle_id else "/materiels"


def _edit_page(request: Request, user: User, fine: Fine, form: service.FineForm, errors: dict[str, str],
               depuis: str, *, status: int = 200) -> HTMLResponse:
    return render_page(request, "fine_form.html", status, user=user, fine=fine, form=form, errors=errors,
                       depuis=_kind(depuis), sources=service.SOURCES, classes=CLASSES, types=TYPES,
                       paiements=PAIEMENTS)


def _submit(request: Request, session: Session, user: User, record: Record,
            form: service.FineForm) -> Response:
    values, errors = service.validate_fine(session, organisation_id=user.organisation_id, form=form)
    if record.driver is not None and "immatriculation" not in errors and values.get("driver_id") != record.id:
        errors["immatriculation"] = "Ce matériel n'est pas affecté à cet utilisateur."
    definition, problem = fineactions.choose_followup(session, organisation_id=user.organisation_id,
                                                      enabled=form.workflow_enabled,
                                                      definition_id=form.workflow_definition_id)
    if problem:
        errors["workflow_definition_id"] = problem
    if errors:
        return _tab(request, session, user, record, form, errors, status=422)
    values["workflow_enabled"] = definition is not None
    fine = service.create_fine(session, user=user, values=values)
    flash(request, f"L'amende N° {fine.numero} est enregistrée.")
    _follow_up(request, session, fine, definition, asked=form.workflow_enabled)
    return RedirectResponse(record.path, status_code=303)


def _follow_up(request: Request, session: Session, fine: Fine, definition: WorkflowDefinition | None, *,
               asked: bool) -> None:
    """Queue the fine's follow-up workflow when one applies (commits the fine in every case) and say so."""
    reason = service.no_followup_reason(fine)
    driver = session.get(Driver, fine.driver_id) if definition is not None and fine.driver_id else None
    if reason is not None or definition is None or driver is None or not driver.email:
        session.commit()
        if reason is not None:
            flash(request, reason)
        elif not asked:
            flash(request, "« Workflow activé » décoché : aucun workflow de suivi pour cette amende.")
        elif definition is None:
            flash(request, "Aucun workflow Contraventions activé : aucun workflow de suivi.")
        else:
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
