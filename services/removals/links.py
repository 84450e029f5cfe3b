"""Action links of the deposer's mail: Accepter, Refuser, Signaler la dépose (per vehicle) and Accepter tout.

Same rules as `core.linkpages` (signed, expiring, purpose-bound, single-use; GET shows, POST acts), with forms
for the refusal's reason and the removal report. The POST runs the Temporal update with the token id as update
id, then marks the token used: a retried POST is deduplicated by Temporal, a replay is refused here.
"""

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from core.db import session_scope
from core.linkpages import LINK_HEADERS
from core.links import ActionLink, LinkAlreadyUsed, LinkError, LinkInvalid, consume, is_used, read_token
from core.logging import log
from core.settings import get_settings
from core.ui import render_page
from core.web import TemporalClient
from services.removals.service import process, queries
from services.removals.service.queries import MandateRow
from services.removals.service.tokens import ACCEPT_ALL_PURPOSE, KINDS
from workflows.removal import STATUS_LABELS, MandateAction, form_problem, refusal

PARALLEL_UPDATES = 16
router = APIRouter(include_in_schema=False)


def _page(request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
    context = {"row": None, "rows": [], "action": None, "button": None, "message": None, "error": False,
               "errors": {}, "form": {}, "labels": STATUS_LABELS, **ctx}
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
        row = queries.by_id(session, int(link.subject.removeprefix("mandate-")))
    if row is None:
        raise LinkInvalid
    return row


def _consume(token: str, purpose: str) -> None:
    with session_scope() as session:
        consume(session, token, purpose)


def _spec(kind: str) -> tuple[str, str, str, str]:
    if kind not in KINDS:
        raise HTTPException(404, "Page introuvable.")
    return KINDS[kind]


@router.get("/liens/accepter-tout/{token}", response_class=HTMLResponse)
async def accept_all_page(request: Request, token: str) -> HTMLResponse:
    heading = "Accepter toutes les demandes de dépose"
    try:
        link = read_token(token, ACCEPT_ALL_PURPOSE)
        rows = await asyncio.to_thread(_waiting, link)
    except LinkError as exc:
        return _refused(request, heading, exc)
    if not rows:
        return _page(request, 409, heading=heading, error=True,
                     message="Aucune demande de dépose de ce mail n'attend plus d'acceptation.")
    return _page(request, heading=heading, rows=rows, button=f"Accepter les {len(rows)} demande(s)",
                 message=f"Vous allez accepter les {len(rows)} demande(s) de dépose encore au statut « Prévenu ».")


@router.post("/liens/accepter-tout/{token}", response_class=HTMLResponse)
async def accept_all(request: Request, token: str, client: TemporalClient) -> HTMLResponse:
    heading = "Accepter toutes les demandes de dépose"
    try:
        link = read_token(token, ACCEPT_ALL_PURPOSE)
        rows = await asyncio.to_thread(_waiting, link)
    except LinkError as exc:
        return _refused(request, heading, exc)
    if not rows:
        return _page(request, 409, heading=heading, error=True,
                     message="Aucune demande de dépose de ce mail n'attend plus d'acceptation.")
    settings, gate = get_settings(), asyncio.Semaphore(PARALLEL_UPDATES)

    async def accept(row: MandateRow) -> str | None:
        payload = MandateAction(by=f"{row.deposer_name} (lien « Accepter tout »)")
        async with gate:
            try:
                await process.apply_action(client, settings, row, "accept", payload, update_id=f"{link.jti}-{row.id}")
            except (process.TransitionRefused, process.EngineUnavailable) as exc:
                return f"{row.vin} : {exc.message}"
        return None

    failures = [f for f in await asyncio.gather(*(accept(r) for r in rows)) if f]
    try:
        await asyncio.to_thread(_consume, token, ACCEPT_ALL_PURPOSE)
    except LinkError as exc:
        return _refused(request, heading, exc)
    done = len(rows) - len(failures)
    return _page(request, 409 if failures and not done else 200, heading=heading, error=bool(failures),
                 message=f"{done} demande(s) de dépose acceptée(s).", failures=failures)


def _waiting(link: ActionLink) -> list[MandateRow]:
    """The vehicles of the link's request and deposer still waiting for an answer ("Prévenu")."""
    request_part, _, deposer_part = link.subject.removeprefix("request-").partition("-deposer-")
    with session_scope() as session:
        if is_used(session, link):
            raise LinkAlreadyUsed
        return queries.of_request(session, int(request_part), deposer_id=int(deposer_part), statuses=("prevenu",))


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
                 form={"removal_date": process.now_paris().strftime("%Y-%m-%dT%H:%M")})


@router.post("/liens/{kind}/{token}", response_class=HTMLResponse)
async def link_act(request: Request, kind: str, token: str, client: TemporalClient) -> HTMLResponse:
    action, purpose, heading, button = _spec(kind)
    try:
        link = read_token(token, purpose)
        row = await asyncio.to_thread(_load, link)
    except LinkError as exc:
        return _refused(request, heading, exc)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    payload = process.payload_from_form(f"{row.deposer_name} (lien e-mail)", form)
    if problem := refusal(action, row.status):
        return _page(request, 409, heading=heading, row=row, message=problem, error=True)
    if problem := form_problem(action, payload, process.now_utc()):
        return _page(request, 422, heading=heading, row=row, action=action, button=button, form=form,
                     message=problem, error=True)
    try:
        label = await process.apply_action(client, get_settings(), row, action, payload, update_id=link.jti)
        await asyncio.to_thread(_consume, token, purpose)
    except (process.TransitionRefused, process.EngineUnavailable) as exc:
        status = 503 if isinstance(exc, process.EngineUnavailable) else 409
        return _page(request, status, heading=heading, row=row, message=exc.message, error=True)
    except LinkError as exc:
        return _refused(request, heading, exc)
    log.info("link.used", purpose=purpose, subject=link.subject)
    return _page(request, heading=heading, row=row,
                 message=f"Merci : la demande de dépose du véhicule {row.vin} est maintenant « {label} ».")
