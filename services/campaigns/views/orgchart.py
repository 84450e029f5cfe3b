"""Organigramme: the valideurs and responsables the drivers file names, utilisateurs or not."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.auth import CurrentUser, DbSession
from core.ui import render_page
from services.campaigns.service.orgchart import ROLE_LABELS, org_chart

router = APIRouter()


@router.get("/organigramme", response_class=HTMLResponse)
def organisation_chart(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    people = org_chart(session, organisation_id=user.organisation_id)
    return render_page(request, "orgchart.html", user=user, people=people, roles=ROLE_LABELS)
