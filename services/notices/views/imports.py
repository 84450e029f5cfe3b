"""«Importer» clients, contrats, quittances from Excel: model files, all-or-nothing imports with a line-and-column
report of every problem."""

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.excel import MB, ExcelIssue
from core.models import User
from core.ui import flash, render_page, today_paris
from services.notices.service import imports as service
from services.notices.service.records import KINDS, Kind
from services.notices.views.roles import Broker, BrokerManager

router = APIRouter()
MAX_UPLOAD = 10 * MB
MAX_SHOWN_ISSUES = 200
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# URL slug → (kind, title, singular, plural, where the list is)
PAGES: dict[str, tuple[str, str, str, str, str]] = {
    "clients": ("clients", "Clients", "client", "clients", "/clients"),
    "contrats": ("contracts", "Contrats", "contrat", "contrats", "/contrats"),
    "quittances": ("receipts", "Quittances", "quittance", "quittances", "/quittances"),
}


def _kind(slug: str) -> Kind:
    if slug not in PAGES:
        raise HTTPException(404, "Page introuvable.")
    return KINDS[PAGES[slug][0]]


def _page(request: Request, user: User, *, issues: dict[str, list[ExcelIssue]] | None = None,
          status: int = 200) -> HTMLResponse:
    sections = []
    for slug, (kind_name, title, _singular, plural, path) in PAGES.items():
        found = (issues or {}).get(slug, [])
        sections.append({"slug": slug, "title": title, "plural": plural, "path": path,
                         "columns": [(c.header, c.rule) for c in KINDS[kind_name].columns],
                         "optional_tail": KINDS[kind_name].optional_tail,
                         "issues": found[:MAX_SHOWN_ISSUES], "hidden": max(0, len(found) - MAX_SHOWN_ISSUES)})
    return render_page(request, "import.html", status, user=user, sections=sections)


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, user: Broker) -> HTMLResponse:
    return _page(request, user)


@router.get("/import/{slug}/modele.xlsx")
def model_file(slug: str, user: Broker) -> Response:
    content = service.model_file(_kind(slug))
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="modele-import-{slug}.xlsx"'})


@router.post("/import/{slug}", response_class=HTMLResponse)
def import_file(request: Request, slug: str, user: BrokerManager, session: DbSession,
                fichier: Annotated[UploadFile | None, File()] = None) -> Response:
    kind = _kind(slug)
    if fichier is None or not fichier.filename:
        return _page(request, user, issues={slug: [ExcelIssue(None, None, "Choisissez un fichier .xlsx à importer.")]},
                     status=422)
    data = fichier.file.read(MAX_UPLOAD + 1)  # one byte more than allowed is enough to refuse it
    result = service.import_file(session, organisation_id=user.organisation_id, kind=kind, data=data,
                                 today=today_paris())
    if isinstance(result, list):
        session.rollback()  # nothing was written; make sure of it
        return _page(request, user, issues={slug: result}, status=422)
    _kind_name, _title, singular, plural, path = PAGES[slug]
    flash(request, f"Fichier importé : {result.total} {singular if result.total == 1 else plural}, dont "
                   f"{result.created} création{'s' if result.created > 1 else ''} et {result.updated} "
                   f"mise{'s' if result.updated > 1 else ''} à jour.")
    return RedirectResponse(path, status_code=303)
