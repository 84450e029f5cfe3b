"""Utilisateurs et matériels: searchable lists, record pages, Excel imports (all-or-nothing) and model files."""

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from core.auth import CurrentUser, DbSession, Manager
from core.excel import MB, ExcelIssue, write_xlsx
from core.models import User
from core.ui import flash, render_page, today_paris
from services.campaigns.departements import DEPARTEMENTS
from services.campaigns.service import driverrecords as records
from services.campaigns.service import fleet as service

router = APIRouter()
MAX_UPLOAD = 10 * MB
MAX_SHOWN_ISSUES = 200
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Importer = Callable[..., service.ImportReport | list[ExcelIssue]]
# What differs between the two imports: (path, nouns singular/plural, headers, import function).
IMPORTS: dict[str, tuple[str, str, str, list[str], Importer]] = {
    "utilisateurs": ("/utilisateurs", "utilisateur", "utilisateurs", service.DRIVER_HEADERS, service.import_drivers),
    "materiels": ("/materiels", "matériel", "matériels", service.VEHICLE_HEADERS, service.import_vehicles),
}


# --- utilisateurs ---

@router.get("/utilisateurs", response_class=HTMLResponse)
def drivers(request: Request, user: CurrentUser, session: DbSession, q: str = "", departement: str = "",
            page: int = 1) -> HTMLResponse:
    rows = service.search_drivers(session, organisation_id=user.organisation_id, q=q, departement=departement,
                                  page=page)
    return render_page(request, "fleet_drivers.html", user=user, page=rows, q=q, departement=departement,
                       departements=DEPARTEMENTS)


@router.get("/utilisateurs/import", response_class=HTMLResponse)
def drivers_import_page(request: Request, user: CurrentUser) -> HTMLResponse:
    return _import_page(request, user, "utilisateurs")


@router.get("/utilisateurs/import/modele.xlsx")
def drivers_model(user: CurrentUser) -> Response:
    return _model_file("utilisateurs")


@router.post("/utilisateurs/import", response_class=HTMLResponse)
def drivers_import(request: Request, user: Manager, session: DbSession,
                   fichier: Annotated[UploadFile | None, File()] = None) -> Response:
    return _import(request, session, user, fichier, "utilisateurs")


@router.get("/utilisateurs/{driver_id}", response_class=HTMLResponse)
def driver(request: Request, driver_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    row = service.get_driver(session, organisation_id=user.organisation_id, driver_id=driver_id)
    if row is None:
        raise HTTPException(404, "Cet utilisateur n'existe pas.")
    vehicles = service.driver_vehicles(session, organisation_id=user.organisation_id, driver_id=row.id)
    history = records.info_history(session, organisation_id=user.organisation_id, driver_id=row.id)
    return render_page(request, "fleet_driver.html", user=user, driver=row, vehicles=vehicles,
                       departement_name=DEPARTEMENTS.get(row.departement or "", ""), today=today_paris(),
                       history=history, provenance=records.provenance(row, history))


# --- matériels ---

@router.get("/materiels", response_class=HTMLResponse)
def vehicles(request: Request, user: CurrentUser, session: DbSession, q: str = "", type: str = "",
             situation: str = "", marque: str = "", gestion: str = "", fournisseur: str = "", tri: str = "immat",
             ordre: str = "asc", page: int = 1) -> HTMLResponse:
    """The seed's Matériels list: search, a filter per column of few values, a sort on every column."""
    filters = service.VehicleFilters(q=q, type_materiel=type, situation=situation, marque=marque,
                                     mode_gestion=gestion, fournisseur=fournisseur,
                                     sort=tri if tri in service.SORTS else "immat", descending=ordre == "desc")
    rows = service.search_vehicles(session, organisation_id=user.organisation_id, filters=filters, page=page)
    shown = {"q": q, "type": type, "situation": situation, "marque": marque, "gestion": gestion,
             "fournisseur": fournisseur}
    return render_page(request, "fleet_vehicles.html", user=user, page=rows, filters=filters, shown=shown,
                       filtered=any(shown.values()), query=urlencode({k: v for k, v in shown.items() if v}),
                       choices=service.vehicle_choices(session, organisation_id=user.organisation_id),
                       sorts=service.SORTS, today=today_paris(), situation=service.situation)


@router.get("/materiels/import", response_class=HTMLResponse)
def vehicles_import_page(request: Request, user: CurrentUser) -> HTMLResponse:
    return _import_page(request, user, "materiels")


@router.get("/materiels/import/modele.xlsx")
def vehicles_model(user: CurrentUser) -> Response:
    return _model_file("materiels")


@router.post("/materiels/import", response_class=HTMLResponse)
def vehicles_import(request: Request, user: Manager, session: DbSession,
                    fichier: Annotated[UploadFile | None, File()] = None) -> Response:
    return _import(request, session, user, fichier, "materiels")


@router.get("/materiels/{vehicle_id}", response_class=HTMLResponse)
def vehicle(request: Request, vehicle_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    row = service.get_vehicle(session, organisation_id=user.organisation_id, vehicle_id=vehicle_id)
    if row is None:
        raise HTTPException(404, "Ce matériel n'existe pas.")
    holder = (service.get_driver(session, organisation_id=user.organisation_id, driver_id=row.driver_id)
              if row.driver_id else None)
    readings = records.reading_history(session, organisation_id=user.organisation_id, vehicle_id=row.id)
    return render_page(request, "fleet_vehicle.html", user=user, vehicle=row, driver=holder,
                       situation=service.situation(row, today_paris()), readings=readings,
                       current=records.current_reading(row, readings))


# --- imports ---

def _import_page(request: Request, user: User, kind: str, issues: list[ExcelIssue] | None = None,
                 status: int = 200) -> HTMLResponse:
    path, singular, plural, headers, _ = IMPORTS[kind]
    issues = issues or []
    return render_page(request, "fleet_import.html", status, user=user, kind=kind, path=path, plural=plural,
                       columns=[(h, service.RULES.get(h, "")) for h in headers],
                       issues=issues[:MAX_SHOWN_ISSUES], hidden=max(0, len(issues) - MAX_SHOWN_ISSUES))


def _model_file(kind: str) -> Response:
    _, _, plural, headers, _ = IMPORTS[kind]
    content = write_xlsx(headers, [], sheet_title=plural.capitalize())
    filename = f"modele-import-{kind}.xlsx"
    return Response(content, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _import(request: Request, session: Session, user: User, fichier: UploadFile | None, kind: str) -> Response:
    path, singular, plural, _, importer = IMPORTS[kind]
    if fichier is None or not fichier.filename:
        return _import_page(request, user, kind, [ExcelIssue(None, None, "Choisissez un fichier .xlsx à importer.")],
                            422)
    data = fichier.file.read(MAX_UPLOAD + 1)  # one byte more than allowed is enough to refuse it
    result = importer(session, organisation_id=user.organisation_id, data=data)
    if isinstance(result, list):
        session.rollback()  # nothing was written; make sure of it
        return _import_page(request, user, kind, result, 422)
    noun = singular if result.total == 1 else plural
    done = "importé" if result.total == 1 else "importés"
    created = f"{result.created} créé{'s' if result.created > 1 else ''}"
    note = f" ; {result.note}" if result.note else ""
    flash(request, f"{result.total} {noun} {done} ({created}, {result.updated} mis à jour){note}")
    return RedirectResponse(path, status_code=303)
