"""Contrats and quittances lists, and the preview of a receipt's notice (rendered, not numbered, not kept)."""

from datetime import date
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from core.auth import DbSession
from core.pdf import PdfError
from core.ui import render_page, today_paris
from services.notices.models import COLLECTIONS, RECEIPT_KINDS, RECEIPT_TYPES
from services.notices.service import directory, entities, notice_pdf
from services.notices.service.directory import ReceiptFilters
from services.notices.views.roles import Broker, RecordId, date_or_none, int_or_none

router = APIRouter()


@router.get("/contrats", response_class=HTMLResponse)
def contracts(request: Request, user: Broker, session: DbSession, q: str = "", entite: str = "",
              page: int = 1) -> HTMLResponse:
    rows = directory.search_contracts(session, organisation_id=user.organisation_id, q=q[:200],
                                      entity_id=int_or_none(entite), page=min(max(page, 1), 100_000))
    return render_page(request, "contracts.html", user=user, page=rows, q=q, entite=entite,
                       entities=entities.list_entities(session, organisation_id=user.organisation_id))


@router.get("/quittances", response_class=HTMLResponse)
def receipts(request: Request, user: Broker, session: DbSession, q: str = "", entite: str = "",
             encaissement: str = "", type: str = "", nature: str = "", effet_du: str = "", effet_au: str = "",
             editee: str = "", page: int = 1) -> HTMLResponse:
    filters = ReceiptFilters(q=q[:200], entity_id=int_or_none(entite), collection=encaissement, receipt_type=type,
                             kind=nature, effect_from=date_or_none(effet_du), effect_to=date_or_none(effet_au),
                             edited=editee)
    rows = directory.search_receipts(session, organisation_id=user.organisation_id, filters=filters,
                                     page=min(max(page, 1), 100_000))
    query = {"q": q, "entite": entite, "encaissement": encaissement, "type": type, "nature": nature,
             "effet_du": effet_du, "effet_au": effet_au, "editee": editee}
    return render_page(request, "receipts.html", user=user, page=rows, query=query, collections=COLLECTIONS,
                       receipt_types=RECEIPT_TYPES, kinds=RECEIPT_KINDS,
                       entities=entities.list_entities(session, organisation_id=user.organisation_id))


@router.get("/quittances/{receipt_id}/apercu.pdf", include_in_schema=False)
def preview(receipt_id: RecordId, user: Broker, session: DbSession, frais_fixes: str = "") -> Response:
    """The notice this receipt would get today: no number taken, nothing kept, the receipt left as it is."""
    try:
        fixed_fees = Decimal(frais_fixes.replace(",", ".") or "0").quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise HTTPException(422, "Montant des frais fixes illisible.") from exc
    if not Decimal("0") <= fixed_fees <= Decimal("1000"):
        raise HTTPException(422, "Le montant des frais fixes doit être compris entre 0 et 1 000 €.")
    content = notice_pdf.content_for_receipt(session, organisation_id=user.organisation_id, receipt_id=receipt_id,
                                             number=None, letter_date=today_paris(), fixed_fees=fixed_fees)
    if content is None:
        raise HTTPException(404, "Cette quittance n'existe pas.")
    try:
        pdf = notice_pdf.render_notice(content)  # a sync route: FastAPI runs it in a worker thread
    except PdfError as exc:
        raise HTTPException(503, str(exc)) from exc
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="apercu-avis-{date.today():%Y%m%d}.pdf"'})
