"""MON COMPTE: "Bienvenue, cliquez sur l'action souhaitée", with the actions of the organisation's kind, and a
requester's setting for its files (place and date required or free)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from core.auth import CurrentUser, DbSession
from core.models import Organisation
from core.ui import flash, render_page
from services.removals.service import listings, queries, upload
from services.removals.views.roles import RequesterManager

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    organisation = session.get(Organisation, user.organisation_id)
    account = queries.account(session, user.organisation_id)
    kind = organisation.kind if organisation else ""
    received = kind == "deposer" and listings.has_received(session, deposer_id=user.organisation_id)
    return render_page(request, "home.html", user=user, organisation=organisation, account=account, kind=kind,
                       has_requests=received)


@router.post("/compte/parametres")
def settings(request: Request, user: RequesterManager, session: DbSession,
             place_date_required: Annotated[str, Form()] = "") -> RedirectResponse:
    """«Lieu de dépose» and «Date de dépose souhaitée»: free fields (the seed), or required in this account's files."""
    organisation = session.get(Organisation, user.organisation_id)
    assert organisation is not None
    required = place_date_required == "oui"
    upload.set_place_date_required(session, organisation_id=organisation.id, slug=organisation.slug,
                                   required=required)
    flash(request, "Lieu de dépose et date de dépose souhaitée : " + (
        "obligatoires dans vos fichiers de demande." if required else "champs libres dans vos fichiers de demande."))
    return RedirectResponse("/", status_code=303)
