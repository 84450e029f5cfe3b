"""The deposer's extranet: "Gérer les déposes" (what is addressed to it), a status's allowed actions, and
"Signaler une dépose". Same rules as the mail links: every action goes through `process.record_action`."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.models import User
from core.settings import get_settings
from core.ui import flash, render_page
from services.removals.service import alerts, listings, process, queries
from services.removals.service.queries import MandateRow, addressed_to
from services.removals.service.rules import STATUS_LABELS, allowed_actions, form_problem, refusal
from services.removals.views.roles import Deposer, DeposerAgent

router = APIRouter()
ACTIONS = {"accepter": "accept", "refuser": "refuse", "signaler": "confirm"}


def _mandate(session: DbSession, user: User, mandate_id: int) -> MandateRow:
    row = queries.for_deposer(session, deposer_id=user.organisation_id, mandate_id=mandate_id)
    if row is None:  # another deposer's vehicle looks exactly like a missing one
        raise HTTPException(404, "Cette demande de dépose n'existe pas.")
    return row


@router.get("/deposes", response_class=HTMLResponse)
def mandates(request: Request, user: Deposer, session: DbSession, q: str = "", statut: str = "",
             demandeur: str = "", page: int = 1) -> HTMLResponse:
    requesters = listings.deposer_requesters(session, deposer_id=user.organisation_id)
    requester_id = next((i for i, _name in requesters if str(i) == demandeur), None)  # another value: no filter
    result = listings.deposer_mandates(session, deposer_id=user.organisation_id, q=q, statut=statut,
                                       requester_id=requester_id, page=page)
    counts = listings.status_counts(session, addressed_to(user.organisation_id))
    return render_page(request, "deposer_list.html", user=user, page=result, q=q, statut=statut, labels=STATUS_LABELS,
                       counts=counts, requesters=requesters, demandeur=str(requester_id or ""),
                       has_requests=bool(requesters))


def _mandate_page(request: Request, user: User, row: MandateRow, *, status: int = 200, message: str | None = None,
                  form: dict[str, str] | None = None, template: str = "deposer_mandate.html") -> HTMLResponse:
    defaults = {"removal_date": process.now_paris().strftime("%d/%m/%Y %H:%M")}
    return render_page(request, template, status, user=user, row=row, labels=STATUS_LABELS,
                       actions=allowed_actions(row.status), message=message, form=defaults | (form or {}),
                       logistics=alerts.logistics_contact(get_settings()))


@router.get("/deposes/{mandate_id}", response_class=HTMLResponse)
def mandate(request: Request, mandate_id: int, user: Deposer, session: DbSession) -> HTMLResponse:
    """Clicking a status: "Veuillez cliquer sur l'action souhaitée", only the actions its status allows."""
    return _mandate_page(request, user, _mandate(session, user, mandate_id))


@router.get("/deposes/{mandate_id}/signaler", response_class=HTMLResponse)
def report_form(request: Request, mandate_id: int, user: Deposer, session: DbSession) -> Response:
    row = _mandate(session, user, mandate_id)
    if problem := refusal("confirm", row.status):
        flash(request, problem, "error")
        return RedirectResponse(f"/deposes/{row.id}", status_code=303)
    return _mandate_page(request, user, row, template="deposer_report.html")


@router.post("/deposes/{mandate_id}/{kind}", response_class=HTMLResponse)
def act(request: Request, mandate_id: int, kind: str, user: DeposerAgent, session: DbSession,
        reason: Annotated[str, Form()] = "", removal_date: Annotated[str, Form()] = "",
        box_digits: Annotated[str, Form()] = "", technician: Annotated[str, Form()] = "") -> Response:
    """Accepter, Refuser (motif obligatoire) or Signaler la dépose, recorded with its mails and signal."""
    if kind not in ACTIONS:
        raise HTTPException(404, "Page introuvable.")
    action = ACTIONS[kind]
    row = _mandate(session, user, mandate_id)
    form = {"reason": reason, "removal_date": removal_date, "box_digits": box_digits, "technician": technician}
    payload = process.payload_from_form(f"{user.full_name} (extranet)", form)
    template = "deposer_report.html" if action == "confirm" else "deposer_mandate.html"
    if problem := form_problem(action, payload, process.now_utc()):
        return _mandate_page(request, user, row, status=422, message=problem, form=form, template=template)
    try:
        done = process.record_action(session, get_settings(), row.id, action, payload)
    except process.TransitionRefused as exc:
        session.rollback()
        flash(request, exc.message, "error")
        return RedirectResponse(f"/deposes/{row.id}", status_code=303)
    flash(request, f"La demande de dépose du véhicule {row.vin} est maintenant « {STATUS_LABELS[done.status]} ».")
    return RedirectResponse("/deposes", status_code=303)

