"""Workflows utilisateurs ("Suivi Workflow"): every driver workflow, its step, its status; ✓ valider, ✕ annuler."""


from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from core.auth import CurrentUser, DbSession, Manager
from core.settings import get_settings
from core.ui import flash, paginate, render_page
from services.campaigns.models import Driver
from services.campaigns.service import driverworkflows as service

router = APIRouter(prefix="/workflows-utilisateurs")
ACTIONS = {"valider": "validé", "annuler": "annulé"}


@router.get("", response_class=HTMLResponse)
def followups(request: Request, user: CurrentUser, session: DbSession, workflow: str = "", statut: str = "",
              page: int = 1) -> HTMLResponse:
    rows = paginate(session, service.followup_query(user.organisation_id, name=workflow, status=statut),
                    page=page, per_page=50)
    return render_page(request, "suivi.html", user=user, page=rows, workflow=workflow, statut=statut,
                       names=service.definition_names(session, organisation_id=user.organisation_id),
                       status_labels=service.STATUS_LABELS)


@router.post("/{followup_id}/{action}")
def act(request: Request, followup_id: int, action: str, user: Manager, session: DbSession) -> RedirectResponse:
    """✓ valider / ✕ annuler: recorded at once (the workflow is told through `core.signals`)."""
    if action not in ACTIONS:
        raise HTTPException(404, "Page introuvable.")
    row = service.get_followup(session, organisation_id=user.organisation_id, followup_id=followup_id)
    if row is None:
        raise HTTPException(404, "Ce workflow n'existe pas.")
    back = RedirectResponse(request.headers.get("referer") or "/workflows-utilisateurs", status_code=303)
    try:
        service.manager_action(session, get_settings(), followup=row, action=action, by=user.full_name)
    except service.ActionRefused as exc:
        flash(request, str(exc), "error")
        return back
    driver = session.get(Driver, row.driver_id)
    who = f" de {driver.prenom} {driver.nom}" if driver else ""
    flash(request, f"Le workflow « {row.definition_name} »{who} est {ACTIONS[action]}.")
    return back
