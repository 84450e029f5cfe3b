"""Step 2, «Avis d'échéances par mail»: «Critères de recherche», «Liste des documents» with the selected notice's
PDF beside it, «Sélection», «Valider», «Bloquer», «Renvoyer», and «Détails du document»."""

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.db import get_scoped
from core.settings import get_settings
from core.ui import flash, render_page
from services.notices.models import Client, Notice, NoticeDocument
from services.notices.service import queue
from services.notices.service.statuses import COLOURS, LABELS
from services.notices.views.roles import Broker, BrokerManager, RecordId, date_or_none, int_or_none

router = APIRouter()
SEARCH_FIELDS = ("user_name", "printed_from", "printed_to", "dossier", "email", "sent_from", "sent_to")
VERBS = {"validate": "validé(s)", "block": "bloqué(s)", "resend": "à renvoyer"}


def _search(request: Request) -> tuple[queue.Search, dict[str, object]]:
    q = request.query_params
    statuses = [s for s in q.getlist("statut") if s in LABELS]
    search = queue.Search(
        user_name=q.get("user_name", "").strip(), printed_from=date_or_none(q.get("printed_from", "")),
        printed_to=date_or_none(q.get("printed_to", "")), dossier=q.get("dossier", "").strip(),
        email=q.get("email", "").strip(), sent_from=date_or_none(q.get("sent_from", "")),
        sent_to=date_or_none(q.get("sent_to", "")), statuses=statuses, run_id=int_or_none(q.get("edition", "")))
    values: dict[str, object] = {name: q.get(name, "") for name in SEARCH_FIELDS}
    values["statut"] = statuses
    values["edition"] = q.get("edition", "")
    return search, values


@router.get("/avis", response_class=HTMLResponse)
def queue_page(request: Request, user: Broker, session: DbSession) -> HTMLResponse:
    search, values = _search(request)
    rows = queue.find_notices(session, user.organisation_id, search, limit=queue.LIST_LIMIT)
    total = len(rows) if len(rows) < queue.LIST_LIMIT else queue.count_notices(session, user.organisation_id, search)
    selected_id = int_or_none(request.query_params.get("avis", ""))
    selected = next(((n, c) for n, c in rows if n.id == selected_id), None)
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "avis"])
    return render_page(request, "queue.html", user=user, rows=rows, values=values, selected=selected,
                       labels=LABELS, colours=COLOURS, query=query, total=total,
                       searched="rechercher" in request.query_params or bool(request.query_params))


@router.post("/avis/actions")
async def notice_actions(request: Request, user: BrokerManager, session: DbSession) -> Response:
    form = await request.form()
    action = str(form.get("action") or "")
    ids = [int(v) for v in map(str, form.getlist("ids")) if v.isdigit() and len(v) < 19]
    back = "/avis" + (f"?{form.get('query')}" if form.get("query") else "")
    try:
        outcomes = queue.request_action(session, get_settings(), user=user, notice_ids=ids, action=action,
                                        reason=str(form.get("reason") or ""))
    except queue.ActionInvalid as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(back, status_code=303)
    session.commit()
    done = [o for o in outcomes if o.refused is None]
    if done:
        flash(request, f"{len(done)} avis {VERBS.get(action, action)} : "
              + ", ".join(f"n°{o.number}" for o in done) + ".")
    for o in outcomes:
        if o.refused:
            flash(request, f"Avis n°{o.number or o.notice_id} : {o.refused}.", "error")
    return RedirectResponse(back, status_code=303)


@router.get("/avis/{notice_id}", response_class=HTMLResponse)
def notice_details(request: Request, notice_id: RecordId, user: Broker, session: DbSession) -> HTMLResponse:
    notice = get_scoped(session, Notice, notice_id, user.organisation_id)
    if notice is None:
        raise HTTPException(404, "Cet avis d'échéance n'existe pas.")
    client = session.get(Client, notice.client_id)
    events, sends = queue.history(session, notice)
    document = session.get(NoticeDocument, notice.document_id)
    return render_page(request, "notice.html", user=user, notice=notice, client=client, events=events, sends=sends,
                       document=document,
                       labels=LABELS, colours=COLOURS, event_labels=queue.EVENT_LABELS)
