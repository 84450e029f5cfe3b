"""MON COMPTE: "Bienvenue, cliquez sur l'action souhaitée", with the actions of the organisation's kind."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.auth import CurrentUser, DbSession
from core.models import Organisation
from core.ui import render_page
from services.removals.service import listings, queries

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    organisation = session.get(Organisation, user.organisation_id)
    account = queries.account(session, user.organisation_id)
    kind = organisation.kind if organisation else ""
    received = kind == "deposer" and listings.has_received(session, deposer_id=user.organisation_id)
    return render_page(request, "home.html", user=user, organisation=organisation, account=account, kind=kind,
                       has_requests=received)
