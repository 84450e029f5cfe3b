"""Clients: the searchable list and the client record («Email», «AE par mail», contracts, receipts, notices)."""

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from core.auth import DbSession
from core.ui import render_page
from services.notices.service import directory
from services.notices.service.directory import ClientFilters
from services.notices.service.fields import civility
from services.notices.views.roles import Broker, RecordId

router = APIRouter()


@router.get("/clients", response_class=HTMLResponse)
def clients(request: Request, user: Broker, session: DbSession, q: str = "", statut: str = "", ae: str = "",
            sans_email: str = "", page: int = 1) -> HTMLResponse:
    filters = ClientFilters(q=q[:200], status=statut, by_email=ae, no_email=sans_email == "1")
    rows = directory.search_clients(session, organisation_id=user.organisation_id, filters=filters,
                                    page=min(max(page, 1), 100_000))
    return render_page(request, "clients.html", user=user, page=rows, q=q, statut=statut, ae=ae,
                       sans_email=sans_email)


@router.get("/clients/{client_id}", response_class=HTMLResponse)
def client(request: Request, client_id: RecordId, user: Broker, session: DbSession) -> HTMLResponse:
    found = directory.get_client(session, organisation_id=user.organisation_id, client_id=client_id)
    if found is None:
        raise HTTPException(404, "Ce client n'existe pas.")
    scope = {"organisation_id": user.organisation_id, "client_id": found.id}
    return render_page(request, "client.html", user=user, client=found, salutation=civility(found.title).salutation,
                       contracts=directory.client_contracts(session, **scope),
                       receipts=directory.client_receipts(session, **scope),
                       notices=directory.client_notices(session, **scope))
