"""The notices home: what the cabinet has loaded, and where to go."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.auth import DbSession
from core.ui import render_page
from services.notices.service import entities, records
from services.notices.views.roles import Broker

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, user: Broker, session: DbSession) -> HTMLResponse:
    counts = records.counts(session, organisation_id=user.organisation_id)
    return render_page(request, "home.html", user=user, counts=counts,
                       entities=entities.list_entities(session, organisation_id=user.organisation_id))
