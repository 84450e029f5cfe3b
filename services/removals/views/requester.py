"""Requester screens: "Créer une demande de dépose" (upload → recap → Confirmer), the list of requests, a
request's detail with per-vehicle cancel and its XLSX export, and the equipped vehicles."""

from datetime import datetime
from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.excel import MB, ExcelIssue, write_xlsx
from core.logging import log
from core.models import User
from core.settings import get_settings
from core.ui import Page, flash, render_page
from services.removals.models import RemovalRequest
from services.removals.service import alerts, listings, process, queries, upload, vehicles
from services.removals.service.rules import STATUS_LABELS, MandateAction, allowed_actions
from services.removals.views.roles import Requester, RequesterManager

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD = 10 * MB
MAX_SHOWN_ISSUES = 200
RECAP_PER_PAGE = 100


def _today() -> datetime:
    return datetime.now(process.PARIS)


def _request(session: DbSession, user: User, number: int) -> RemovalRequest:
    found = queries.get_request(session, organisation_id=user.organisation_id, number=number)
    if found is None:
        raise HTTPException(404, "Cette demande de dépose n'existe pas.")
    return found


def _new_page(request: Request, user: User, session: DbSession, *, issues: list[ExcelIssue] | None = None,
              status: int = 200, tracking_email: str = "", description: str = "",
              errors: dict[str, str] | None = None) -> HTMLResponse:
    issues = issues or []
    deposers = upload.main_deposers(session, organisation_id=user.organisation_id)
    required = upload.place_date_required(session, organisation_id=user.organisation_id)
    return render_page(request, "request_new.html", status, user=user, headers=upload.HEADERS, deposers=deposers,
                       place_date_required=required,
                       issues=issues[:MAX_SHOWN_ISSUES], hidden=max(0, len(issues) - MAX_SHOWN_ISSUES),
                       tracking_email=tracking_email or user.email, description=description, errors=errors or {})


@router.get("/demandes/nouvelle", response_class=HTMLResponse)
def new_request(request: Request, user: Requester, session: DbSession) -> HTMLResponse:
    return _new_page(request, user, session)


@router.get("/demandes/modele.xlsx")
def model_file(user: Requester, session: DbSession) -> Response:
    """The expected file, with two example lines taken from the requester's own vehicles when it has some, and the
    requester's main deposers on a second sheet (only the first one is read back)."""
    examples = upload.example_lines(session, organisation_id=user.organisation_id, today=_today().date())
    deposers = upload.main_deposers(session, organisation_id=user.organisation_id)
    content = write_xlsx(upload.HEADERS, examples, sheet_title="Demande de dépose",
                         extra_sheets=[("Vos principaux déposeurs", upload.DEPOSER_HEADERS, deposers)])
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="modele-demande-de-depose.xlsx"'})


@router.post("/demandes/nouvelle", response_class=HTMLResponse)
def upload_file(request: Request, user: RequesterManager, session: DbSession,
                fichier: Annotated[UploadFile | None, File()] = None, tracking_email: Annotated[str, Form()] = "",
                description: Annotated[str, Form()] = "") -> Response:
    page = partial(_new_page, request, user, session, tracking_email=tracking_email, description=description)
    if not upload.valid_email(tracking_email):
        return page(status=422, errors={"tracking_email": "Indiquez une adresse e-mail de suivi valide."})
    if fichier is None or not fichier.filename:
        return page(status=422, issues=[ExcelIssue(None, None, "Choisissez un fichier Excel (.xls ou .xlsx) à "
                                                               "charger.")])
    data = fichier.file.read(MAX_UPLOAD + 1)
    try:
        lines = upload.check_upload(session, organisation_id=user.organisation_id, data=data, today=_today().date())
    except upload.UploadRefused as exc:
        session.rollback()
        return page(status=422, issues=exc.issues)
    upload_id = upload.save_pending(session, user=user, filename=fichier.filename,
                                    tracking_email=tracking_email.strip(), description=description.strip() or None,
                                    lines=lines)
    return RedirectResponse(f"/demandes/recapitulatif/{upload_id}", status_code=303)


@router.get("/demandes/recapitulatif/{upload_id}", response_class=HTMLResponse)
def recap(request: Request, upload_id: str, user: Requester, session: DbSession, page: int = 1) -> HTMLResponse:
    pending = upload.get_pending(session, organisation_id=user.organisation_id, upload_id=upload_id)
    if pending is None:
        raise HTTPException(404, "Ce fichier n'existe pas ou a expiré : chargez-le de nouveau.")
    lines = upload.pending_lines(pending)
    page = max(1, page)
    shown = Page(lines[(page - 1) * RECAP_PER_PAGE:page * RECAP_PER_PAGE], page, RECAP_PER_PAGE, len(lines))
    return render_page(request, "request_recap.html", user=user, pending=pending, page=shown,
                       deposers=len({line.code for line in lines}))


@router.post("/demandes/recapitulatif/{upload_id}/confirmer")
def confirm(request: Request, upload_id: str, user: RequesterManager, session: DbSession) -> Response:
    try:
        created, is_new = process.confirm_request(session, get_settings(), user=user, upload_id=upload_id,
                                                  today=_today().date())
    except LookupError as exc:
        raise HTTPException(404, "Ce fichier n'existe pas ou a expiré : chargez-le de nouveau.") from exc
    except upload.UploadRefused as exc:
        session.rollback()
        return _new_page(request, user, session, issues=exc.issues, status=409)
    session.commit()
    log.info("removals.request_confirmed", number=created.number, new=is_new)
    return RedirectResponse(f"/demandes/{created.number}/enregistree", status_code=303)


@router.get("/demandes/{number}/enregistree", response_class=HTMLResponse)
def saved(request: Request, number: int, user: Requester, session: DbSession) -> HTMLResponse:
    return render_page(request, "request_saved.html", user=user, removal_request=_request(session, user, number))


@router.get("/demandes", response_class=HTMLResponse)
def requests(request: Request, user: Requester, session: DbSession, q: str = "", page: int = 1) -> HTMLResponse:
    result = listings.requests_page(session, organisation_id=user.organisation_id, q=q, page=page)
    return render_page(request, "requests.html", user=user, page=result, q=q)


def _detail_page(request: Request, user: User, session: DbSession, removal_request: RemovalRequest, *,
                 q: str = "", statut: str = "", page: int = 1, status: int = 200,
                 errors: dict[str, str] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
    result = listings.request_mandates(session, organisation_id=user.organisation_id, request_id=removal_request.id,
                                       q=q, statut=statut, page=page)
    untold = listings.untold_deposers(session, organisation_id=user.organisation_id, request_id=removal_request.id)
    form = form or {"tracking_email": removal_request.tracking_email,
                    "alert_emails": "\n".join(removal_request.alert_emails)}
    return render_page(request, "request_detail.html", status, user=user, removal_request=removal_request,
                       page=result, q=q, statut=statut, labels=STATUS_LABELS, allowed=allowed_actions, untold=untold,
                       errors=errors or {}, form=form)


@router.get("/demandes/{number}", response_class=HTMLResponse)
def detail(request: Request, number: int, user: Requester, session: DbSession, q: str = "", statut: str = "",
           page: int = 1) -> HTMLResponse:
    return _detail_page(request, user, session, _request(session, user, number), q=q, statut=statut, page=page)


@router.post("/demandes/{number}/alertes", response_class=HTMLResponse)
def edit_recipients(request: Request, number: int, user: RequesterManager, session: DbSession,
                    tracking_email: Annotated[str, Form()] = "", alert_emails: Annotated[str, Form()] = "") -> Response:
    """«Destinataires des alertes»: the tracking address and the others, for the request's next mails."""
    removal_request = _request(session, user, number)
    try:
        alerts.set_recipients(removal_request, tracking_email=tracking_email, others=alert_emails)
    except alerts.RecipientsRefused as exc:
        session.rollback()
        return _detail_page(request, user, session, _request(session, user, number), status=422,
                            errors={exc.field: exc.message},
                            form={"tracking_email": tracking_email, "alert_emails": alert_emails})
    count = 1 + len(removal_request.alert_emails)
    flash(request, f"Destinataires des alertes de la demande #{number} enregistrés : {count} adresse(s).")
    return RedirectResponse(f"/demandes/{number}", status_code=303)


@router.get("/demandes/{number}/export.xlsx")
def export(number: int, user: Requester, session: DbSession) -> Response:
    removal_request = _request(session, user, number)
    rows = listings.export_rows(session, organisation_id=user.organisation_id, request=removal_request)
    content = write_xlsx(listings.EXPORT_HEADERS, rows, sheet_title=f"Demande {number}")
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="demande-de-depose-{number}.xlsx"'})


@router.post("/demandes/{number}/vehicules/{mandate_id}/annuler")
def cancel(request: Request, number: int, mandate_id: int, user: RequesterManager,
           session: DbSession) -> RedirectResponse:
    row = queries.for_requester(session, organisation_id=user.organisation_id, mandate_id=mandate_id)
    if row is None or row.request_no != number:
        raise HTTPException(404, "Ce véhicule ne fait pas partie de cette demande.")
    try:
        process.record_action(session, get_settings(), row.id, "cancel", MandateAction(by=user.full_name))
        flash(request, f"La demande de dépose du véhicule {row.vin} est maintenant « Annulée ».")
    except process.TransitionRefused as exc:
        session.rollback()
        flash(request, exc.message, "error")
    return RedirectResponse(f"/demandes/{number}", status_code=303)


def _vehicles_page(request: Request, user: User, session: DbSession, *, q: str = "", page: int = 1,
                   status: int = 200, issues: list[ExcelIssue] | None = None) -> HTMLResponse:
    result = listings.vehicles_page(session, organisation_id=user.organisation_id, q=q, page=page)
    issues = issues or []
    return render_page(request, "vehicles.html", status, user=user, page=result, q=q,
                       issues=issues[:MAX_SHOWN_ISSUES], hidden=max(0, len(issues) - MAX_SHOWN_ISSUES),
                       headers=vehicles.LOCATION_HEADERS)


@router.get("/vehicules", response_class=HTMLResponse)
def vehicle_list(request: Request, user: Requester, session: DbSession, q: str = "", page: int = 1) -> HTMLResponse:
    return _vehicles_page(request, user, session, q=q, page=page)


@router.post("/vehicules/{vehicle_id}/emplacement")
def edit_location(request: Request, vehicle_id: int, user: RequesterManager, session: DbSession,
                  declared_location: Annotated[str, Form()] = "", q: Annotated[str, Form()] = "") -> RedirectResponse:
    """«Emplacement déclaré» of one vehicle, edited in the list."""
    try:
        vehicle = vehicles.set_location(session, organisation_id=user.organisation_id, vehicle_id=vehicle_id,
                                        location=declared_location)
    except LookupError as exc:
        raise HTTPException(404, "Ce véhicule n'existe pas.") from exc
    except ValueError as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(f"/vehicules?q={quote(q)}", status_code=303)
    flash(request, f"Emplacement déclaré du véhicule {vehicle.vin} : {vehicle.declared_location or 'non renseigné'}.")
    return RedirectResponse(f"/vehicules?q={quote(q)}", status_code=303)


@router.get("/vehicules/modele-emplacements.xlsx")
def locations_model(user: Requester, session: DbSession) -> Response:
    """The import's file, filled with the requester's vehicles and their current «Emplacement déclaré»."""
    rows = listings.location_rows(session, organisation_id=user.organisation_id)
    content = write_xlsx(vehicles.LOCATION_HEADERS, rows, sheet_title="Emplacements")
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="emplacements-declares.xlsx"'})


@router.post("/vehicules/emplacements", response_class=HTMLResponse)
def import_locations(request: Request, user: RequesterManager, session: DbSession,
                     fichier: Annotated[UploadFile | None, File()] = None) -> Response:
    """Import «Vin | Emplacement déclaré» (.xls or .xlsx): all lines or none."""
    if fichier is None or not fichier.filename:
        return _vehicles_page(request, user, session, status=422, issues=[
            ExcelIssue(None, None, "Choisissez un fichier Excel (.xls ou .xlsx) à importer.")])
    try:
        count = vehicles.import_locations(session, organisation_id=user.organisation_id,
                                          data=fichier.file.read(MAX_UPLOAD + 1))
    except vehicles.LocationRefused as exc:
        session.rollback()
        return _vehicles_page(request, user, session, status=422, issues=exc.issues)
    flash(request, f"Emplacements déclarés importés : {count} véhicule(s) mis à jour.")
    return RedirectResponse("/vehicules", status_code=303)
