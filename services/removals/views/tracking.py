"""«Suivi des déposes»: every mandate of the requester's account, across its requests, with filters and an XLSX
export of what the filters keep (the per-request pages stay in `requester`)."""

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from core.auth import DbSession
from core.excel import write_xlsx
from core.ui import render_page
from services.removals.service import listings
from services.removals.service.rules import STATUS_LABELS
from services.removals.views.requester import XLSX
from services.removals.views.roles import Requester

router = APIRouter()
MAX_ID = 2**63 - 1
MAX_PAGE = 1_000_000


def _number(value: str, label: str, errors: dict[str, str], key: str) -> int | None:
    value = value.strip().lstrip("#")
    if not value:
        return None
    if value.isdigit() and 1 <= int(value) <= MAX_ID:
        return int(value)
    errors[key] = f"{label} : nombre entier positif attendu, trouvé « {value[:30]} »."
    return None


def _day(value: str, label: str, errors: dict[str, str], key: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors[key] = f"{label} : date attendue (aaaa-mm-jj), trouvé « {value.strip()[:30]} »."
        return None


def _filters(q: str, statut: str, deposeur: str, demande: str, du: str, au: str
             ) -> tuple[listings.TrackingFilters, dict[str, str]]:
    """The filters as typed; a value that cannot be read is left out and said next to its field."""
    errors: dict[str, str] = {}
    filters = listings.TrackingFilters(
        q=q, statut=statut, deposer_id=_number(deposeur, "Déposeur", errors, "deposeur"),
        request_no=_number(demande, "N° demande", errors, "demande"),
        desired_from=_day(du, "Date souhaitée du", errors, "du"),
        desired_to=_day(au, "Date souhaitée au", errors, "au"))
    return filters, errors


@router.get("/suivi", response_class=HTMLResponse)
def tracking(request: Request, user: Requester, session: DbSession, q: str = "", statut: str = "",
             deposeur: str = "", demande: str = "", du: str = "", au: str = "", page: int = 1) -> HTMLResponse:
    filters, errors = _filters(q, statut, deposeur, demande, du, au)
    result = listings.tracking_page(session, organisation_id=user.organisation_id, filters=filters,
                                    page=min(max(page, 1), MAX_PAGE))
    query = {"q": q, "statut": statut, "deposeur": deposeur, "demande": demande, "du": du, "au": au}
    return render_page(request, "tracking.html", 422 if errors else 200, user=user, page=result, labels=STATUS_LABELS,
                       deposers=listings.requester_deposers(session, organisation_id=user.organisation_id),
                       query=query, errors=errors)


@router.get("/suivi/export.xlsx")
def tracking_export(user: Requester, session: DbSession, q: str = "", statut: str = "", deposeur: str = "",
                    demande: str = "", du: str = "", au: str = "") -> Response:
    filters, _errors = _filters(q, statut, deposeur, demande, du, au)
    rows = listings.tracking_export(session, organisation_id=user.organisation_id, filters=filters)
    content = write_xlsx(listings.EXPORT_HEADERS, rows, sheet_title="Suivi des déposes")
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="suivi-des-deposes.xlsx"'})
