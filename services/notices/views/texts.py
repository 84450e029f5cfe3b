"""«Etat_text»: the letter texts a run can add after the notice's standard paragraph. Managers choose one for a run;
administrators write, edit, archive them and pick the default."""

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import update

from core.auth import DbSession
from core.db import get_scoped, scoped
from core.models import User
from core.ui import flash, render_page
from services.notices.models import NoticeText
from services.notices.views.roles import Broker, BrokerAdmin, RecordId

router = APIRouter()
MAX_NAME, MAX_BODY = 120, 4000


def _page(request: Request, session: DbSession, user: User, *, text: NoticeText | None = None,
          values: dict[str, str] | None = None, errors: dict[str, str] | None = None, status: int = 200
          ) -> HTMLResponse:
    texts = list(session.scalars(scoped(NoticeText, user.organisation_id).order_by(NoticeText.archived,
                                                                                      NoticeText.name)))
    return render_page(request, "texts.html", status, user=user, texts=texts, text=text,
                       values=values or ({"name": text.name, "body": text.body, "is_default": "1" if text.is_default
                                          else ""} if text else {}), errors=errors or {})


@router.get("/textes", response_class=HTMLResponse)
def texts_page(request: Request, user: Broker, session: DbSession, edit: int | None = None) -> HTMLResponse:
    text = get_scoped(session, NoticeText, edit, user.organisation_id) if edit and edit < 2**63 else None
    return _page(request, session, user, text=text)


@router.post("/textes", response_class=HTMLResponse)
async def save_text(request: Request, user: BrokerAdmin, session: DbSession) -> Response:
    form = await request.form()
    raw = {k: str(form.get(k) or "").strip() for k in ("id", "name", "body", "is_default")}
    text = None
    if raw["id"]:
        text = get_scoped(session, NoticeText, int(raw["id"]), user.organisation_id) if raw["id"].isdigit() and len(
            raw["id"]) < 19 else None
        if text is None:
            raise HTTPException(404, "Ce texte n'existe pas.")
    errors = {}
    if not raw["name"] or len(raw["name"]) > MAX_NAME:
        errors["name"] = f"Nom du texte obligatoire ({MAX_NAME} caractères au plus)."
    if not raw["body"] or len(raw["body"]) > MAX_BODY:
        errors["body"] = f"Texte obligatoire ({MAX_BODY} caractères au plus)."
    taken = session.scalars(scoped(NoticeText, user.organisation_id).where(NoticeText.name == raw["name"])).first()
    if taken is not None and taken is not text:
        errors["name"] = f"Un autre texte s'appelle déjà « {raw['name']} »."
    if errors:
        return _page(request, session, user, text=text, values=raw, errors=errors, status=422)
    if raw["is_default"]:
        session.execute(update(NoticeText).where(NoticeText.organisation_id == user.organisation_id)
                        .values(is_default=False))
    if text is None:
        text = NoticeText(organisation_id=user.organisation_id)
        session.add(text)
    text.name, text.body, text.is_default = raw["name"], raw["body"], bool(raw["is_default"])
    session.commit()
    flash(request, f"Texte « {text.name} » enregistré.")
    return RedirectResponse("/textes", status_code=303)


@router.post("/textes/{text_id}/archiver")
def archive_text(request: Request, text_id: RecordId, user: BrokerAdmin, session: DbSession) -> Response:
    text = get_scoped(session, NoticeText, text_id, user.organisation_id)
    if text is None:
        raise HTTPException(404, "Ce texte n'existe pas.")
    text.archived, text.is_default = not text.archived, False
    session.commit()
    flash(request, f"Texte « {text.name} » {'archivé' if text.archived else 'rétabli'}.")
    return RedirectResponse("/textes", status_code=303)
