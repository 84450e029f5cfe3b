"""Action links of the deposer's mail: Accepter, Refuser, Signaler la dépose (per vehicle) and Accepter tout.

Same rules as `core.linkpages` (signed, expiring, purpose-bound, single-use; GET shows, POST acts), with forms
for the refusal's reason and the removal report. The POST marks the token used and records the action in one
transaction (`process.record_action`), then answers: the workflow hears of it through the signal relay.
"""

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from core.db import session_scope
from core.linkpages import LINK_HEADERS
from core.links import ActionLink, LinkAlreadyUsed, LinkError, LinkInvalid, consume, is_used, read_token
from core.logging import log
from core.settings import get_settings
from core.ui import render_page
from services.removals.service import alerts, process, queries
from services.removals.service.queries import MandateRow
from services.removals.service.rules import STATUS_LABELS, MandateAction, form_problem, refusal
from services.removals.service.tokens import ACCEPT_ALL_PURPOSE, KINDS

router = APIRouter(include_in_schema=False)


def _page(request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
    context = {"row": None, "rows": [], "action": None, "button": None, "message": None, "error": False,
               "errors": {}, "form": {}, "labels": STATUS_LABELS,
               "logistics": alerts.logistics_contact(get_settings()), **ctx}
    response = render_page(request, "link_form.html", status, **context)
    response.headers.update(LINK_HEADERS)
    return response


def _refused(request: Request, heading: str, exc: LinkError) -> HTMLResponse:
    log.info("link.refused", reason=type(exc).__name__)
    return _page(request, exc.status, heading=heading, message=exc.message, error=True)


def _load(link: ActionLink) -> MandateRow:
    with session_scope() as session:
        if is_used(session, link):
            raise LinkAlreadyUsed
        mandate_id = int(link.subject.removeprefix("mandate-"))
        process.catch_up_notified(session, mandate_id)  # the mail is here: it was sent, whatever the launcher says
        row = queries.by_id(session, mandate_id)
    if row is None:
        raise LinkInvalid
    return row


def _spec(kind: str) -> tuple[str, str, str, str]:
    if kind not in KINDS:
        raise HTTPException(404, "Page introuvable.")
    return KINDS[kind]


@router.get("/liens/accepter-tout/{token}", response_class=HTMLResponse)
async def accept_all_page(request: Request, token: str) -> HTMLResponse:
    heading = "Accepter toutes les demandes de dépose"
    try:
        rows = await asyncio.to_thread(_still_waiting, read_token(token, ACCEPT_ALL_PURPOSE))
    except LinkError as exc:
        return _refused(request, heading, exc)
    if not rows:
        return _page(request, 409, heading=heading, error=True,
                     message="Aucune demande de dépose de ce mail n'attend plus d'acceptation.")
    return _page(request, heading=heading, rows=rows, button=f"Accepter les {len(rows)} demande(s)",
                 message=f"Vous allez accepter les {len(rows)} demande(s) de dépose encore au statut « Prévenu ».")


@router.post("/liens/accepter-tout/{token}", response_class=HTMLResponse)
async def accept_all(request: Request, token: str) -> HTMLResponse:
    heading = "Accepter toutes les demandes de dépose"
    try:
        accepted = await asyncio.to_thread(_accept_all, token)
    except LinkError as exc:
        return _refused(request, heading, exc)
    if not accepted:
        return _page(request, 409, heading=heading, error=True,
                     message="Aucune demande de dépose de ce mail n'attend plus d'acceptation.")
    return _page(request, heading=heading, rows=accepted, message=f"{len(accepted)} demande(s) de dépose acceptée(s).")


def _accept_all(token: str) -> list[MandateRow]:
    """In one transaction: the link used, every vehicle still Prévenu accepted. Nothing to accept: nothing used."""
    settings = get_settings()
    with session_scope() as session:
        link = consume(session, token, ACCEPT_ALL_PURPOSE)
        accepted = []
        for row in _waiting(session, link):
            payload = MandateAction(by=f"{row.deposer_name} (lien « Accepter tout »)")
            # Changed meanwhile (by the extranet, say): left as it is now.
            with contextlib.suppress(process.TransitionRefused), session.begin_nested():
                accepted.append(process.record_action(session, settings, row.id, "accept", payload))
        if not accepted:
            session.rollback()
    return accepted


def _waiting(session: Session, link: ActionLink) -> list[MandateRow]:
    """The vehicles of the link's request and deposer still waiting for an answer ("Prévenu")."""
    request_part, _, deposer_part = link.subject.removeprefix("request-").partition("-deposer-")
    request_id, deposer_id = int(request_part), int(deposer_part)
    process.mark_notified(session, request_id=request_id, deposer_id=deposer_id)  # see `catch_up_notified`
    return queries.of_request(session, request_id, deposer_id=deposer_id, statuses=("prevenu",))


def _still_waiting(link: ActionLink) -> list[MandateRow]:
    with session_scope() as session:
        if is_used(session, link):
            raise LinkAlreadyUsed
        return _waiting(session, link)


@router.get("/liens/{kind}/{token}", response_class=HTMLResponse)
async def link_page(request: Request, kind: str, token: str) -> HTMLResponse:
    action, purpose, heading, button = _spec(kind)
    try:
        row = await asyncio.to_thread(_load, read_token(token, purpose))
    except LinkError as exc:
        return _refused(request, heading, exc)
    if problem := refusal(action, row.status):
        return _page(request, 409, heading=heading, row=row, message=problem, error=True)
    return _page(request, heading=heading, row=row, action=action, button=button,
                 form={"removal_date": process.now_paris().strftime("%d/%m/%Y %H:%M")})


@router.post("/liens/{kind}/{token}", response_class=HTMLResponse)
async def link_act(request: Request, kind: str, token: str) -> HTMLResponse:
    action, purpose, heading, button = _spec(kind)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        row, problem = await asyncio.to_thread(_act, token, purpose, action, form)
    except LinkError as exc:
        return _refused(request, heading, exc)
    except process.TransitionRefused as exc:
        return _page(request, 409, heading=heading, row=exc.row, message=exc.message, error=True)
    if problem:
        return _page(request, 422, heading=heading, row=row, action=action, button=button, form=form,
                     message=problem, error=True)
    return _page(request, heading=heading, row=row,
                 message=f"Merci : la demande de dépose du véhicule {row.vin} est maintenant "
                         f"« {STATUS_LABELS[row.status]} ».")


def _act(token: str, purpose: str, action: str, form: dict[str, str]) -> tuple[MandateRow, str | None]:
    """One transaction: the link marked used and the action recorded, or neither (refused, form incomplete).
    Returns the row (after the action) and the form's problem, if any; raises TransitionRefused (with the row)."""
    payload = process.payload_from_form("lien e-mail", form)
    problem = form_problem(action, payload, process.now_utc())
    refused = None
    with session_scope() as session:
        link = consume(session, token, purpose)
        mandate_id = int(link.subject.removeprefix("mandate-"))
        if problem is None:
            try:
                return process.record_action(session, get_settings(), mandate_id, action, payload), None
            except process.TransitionRefused as exc:
                refused = exc.message
        session.rollback()  # nothing happened: the link stays usable
        row = queries.by_id(session, mandate_id)
    if row is None:
        raise LinkInvalid
    if refused := refused or refusal(action, row.status):  # a closed mandate says so before any form problem
        raise process.TransitionRefused(refused, row)
    return row, problem
