"""Step 1, «Avis d'échéances» with «Mail»: the criteria form, the run's page (what will be made, who is left out
and why, «Marquer les avis comme édités ?»), and the clients left out as a paper list (XLSX, PDF)."""

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.db import scoped
from core.excel import write_xlsx
from core.models import User
from core.pdf import PdfError, render_pdf
from core.settings import get_settings
from core.ui import flash, render_page, today_paris
from services.notices.models import COLLECTIONS, RECEIPT_TYPES, LegalEntity, NoticeRun, NoticeText
from services.notices.service import entities, runs
from services.notices.views.imports import XLSX
from services.notices.views.roles import Broker, BrokerManager, RecordId

router = APIRouter()
LIST_FIELDS = ("collection", "receipt_types", "deposits", "options")


def _texts(session: DbSession, user: User) -> list[NoticeText]:
    return list(session.scalars(scoped(NoticeText, user.organisation_id)
                                .where(NoticeText.archived.is_(False)).order_by(NoticeText.name)))


def _form_page(request: Request, user: User, session: DbSession, values: dict[str, object],
               errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    return render_page(request, "run_form.html", status, user=user, values=values, errors=errors or {},
                       entities=entities.list_entities(session, organisation_id=user.organisation_id),
                       texts=_texts(session, user), collections=COLLECTIONS, receipt_types=RECEIPT_TYPES,
                       deposits=runs.DEPOSITS, options=runs.EDITION_OPTIONS,
                       recent=runs.list_runs(session, user.organisation_id), labels=runs.STATUS_LABELS)


def _run(session: DbSession, user: User, run_id: int) -> NoticeRun:
    run = runs.get_run(session, user.organisation_id, run_id)
    if run is None:
        raise HTTPException(404, "Cette édition n'existe pas.")
    return run


@router.get("/editions", response_class=HTMLResponse)
def run_form(request: Request, user: Broker, session: DbSession) -> HTMLResponse:
    values = runs.defaults(today_paris())
    found = entities.list_entities(session, organisation_id=user.organisation_id)
    if len(found) == 1:
        values["entity_id"] = str(found[0].id)
    default_text = next((t for t in _texts(session, user) if t.is_default), None)
    if default_text:
        values["text_id"] = str(default_text.id)
    return _form_page(request, user, session, values)


@router.post("/editions", response_class=HTMLResponse)
async def start_run(request: Request, user: BrokerManager, session: DbSession) -> Response:
    form = await request.form()
    raw: dict[str, object] = {k: str(form.get(k) or "") for k in runs.defaults(today_paris()) if k not in LIST_FIELDS}
    for name in LIST_FIELDS:
        raw[name] = [str(v) for v in form.getlist(name)]
    checked = runs.check_form(session, user.organisation_id, raw)
    if checked.criteria is None:
        return _form_page(request, user, session, raw, checked.errors, status=422)
    client = request.client.host if request.client else ""
    run = runs.start_run(session, get_settings(), user=user, criteria=checked.criteria, workstation=client)
    session.commit()
    return RedirectResponse(f"/editions/{run.id}", status_code=303)


@router.get("/editions/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: RecordId, user: Broker, session: DbSession) -> HTMLResponse:
    run = _run(session, user, run_id)
    return render_page(request, "run.html", user=user, run=run, labels=runs.STATUS_LABELS,
                       excluded=runs.run_items(session, run, excluded=True),
                       entity=session.get(LegalEntity, run.legal_entity_id))


@router.post("/editions/{run_id}/reponse")
async def answer_run(request: Request, run_id: RecordId, user: BrokerManager, session: DbSession) -> Response:
    run = _run(session, user, run_id)
    answer = str((await request.form()).get("answer") or "")
    if answer not in ("oui", "non"):
        raise HTTPException(422, "Répondez « Oui » ou « Non ».")
    try:
        runs.answer_run(session, get_settings(), user=user, run=run, confirmed=answer == "oui")
    except runs.RunRefused as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(f"/editions/{run_id}", status_code=303)
    session.commit()
    flash(request, "Avis marqués comme édités : ils arrivent dans « Avis d'échéances par mail »." if answer == "oui"
          else "Aucun avis n'a été gardé.")
    return RedirectResponse(f"/editions/{run_id}", status_code=303)


EXCLUDED_HEADERS = ["Dossier", "Nom", "Prénom", "Adresse", "Code postal", "Ville", "Email", "Contrat", "Quittance",
                    "Échéance", "Motif"]


def _excluded_rows(session: DbSession, run: NoticeRun) -> list[list[object]]:
    return [[r.client.number, r.client.last_name, r.client.first_name or "",
             " ".join(p for p in (r.client.address1, r.client.address2) if p), r.client.postal_code, r.client.town,
             r.client.email or "", r.contract.number, r.receipt.number, r.receipt.effect_date, r.item.excluded_reason]
            for r in runs.run_items(session, run, excluded=True)]


@router.get("/editions/{run_id}/exclus.xlsx")
def excluded_xlsx(run_id: RecordId, user: Broker, session: DbSession) -> Response:
    run = _run(session, user, run_id)
    data = write_xlsx(EXCLUDED_HEADERS, _excluded_rows(session, run), sheet_title="Clients à imprimer")
    return Response(data, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="edition-{run.id}-papier.xlsx"'})


@router.get("/editions/{run_id}/exclus.pdf")
async def excluded_pdf(request: Request, run_id: RecordId, user: Broker, session: DbSession) -> Response:
    run = _run(session, user, run_id)
    html = request.app.state.templates.get_template("run_excluded_pdf.html").render(
        run=run, headers=EXCLUDED_HEADERS, rows=_excluded_rows(session, run),
        entity=session.get(LegalEntity, run.legal_entity_id))
    try:
        pdf = await asyncio.to_thread(render_pdf, html)
    except PdfError as exc:
        raise HTTPException(503, f"La liste papier n'a pas pu être générée, réessayez : {exc}") from exc
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="edition-{run.id}-papier.pdf"'})
