"""«Entités juridiques»: the list, and the letterhead form (administrators only)."""


from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import DbSession
from core.models import User
from core.ui import flash, render_page
from services.notices.models import LegalEntity
from services.notices.service import entities as service
from services.notices.views.roles import Broker, BrokerAdmin, RecordId

router = APIRouter()
FIELDS = tuple(service.FORM)


def _form_page(request: Request, user: User, *, entity: LegalEntity | None, values: Mapping[str, object],
               errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    return render_page(request, "entity_form.html", status, user=user, entity=entity, values=values,
                       errors=errors or {}, labels={k: v[0] for k, v in service.FORM.items()},
                       required={k for k, v in service.FORM.items() if v[2]})


def _entity(session: DbSession, user: User, entity_id: int) -> LegalEntity:
    entity = service.get_entity(session, organisation_id=user.organisation_id, entity_id=entity_id)
    if entity is None:
        raise HTTPException(404, "Cette entité juridique n'existe pas.")
    return entity


async def _posted(request: Request) -> dict[str, str]:
    form = await request.form()
    return {name: str(form.get(name) or "") for name in FIELDS}


@router.get("/entites", response_class=HTMLResponse)
def entity_list(request: Request, user: Broker, session: DbSession) -> HTMLResponse:
    rows = service.list_entities(session, organisation_id=user.organisation_id)
    return render_page(request, "entities.html", user=user, entities=rows, vat_label=service.vat_label)


@router.get("/entites/nouvelle", response_class=HTMLResponse)
def new_entity(request: Request, user: BrokerAdmin) -> HTMLResponse:
    return _form_page(request, user, entity=None, values={"next_notice_no": 1, "manual_confirmation": True})


@router.post("/entites/nouvelle", response_class=HTMLResponse)
async def create_entity(request: Request, user: BrokerAdmin, session: DbSession) -> Response:
    raw = await _posted(request)
    form = service.check_form(raw)
    if not form.errors:
        entity = service.save_entity(session, organisation_id=user.organisation_id, form=form)
        if entity is not None:
            flash(request, f"Entité juridique « {entity.name} » créée.")
            return RedirectResponse("/entites", status_code=303)
    return _form_page(request, user, entity=None, values=raw, errors=form.errors, status=422)


@router.get("/entites/{entity_id}", response_class=HTMLResponse)
def edit_entity(request: Request, entity_id: RecordId, user: BrokerAdmin, session: DbSession) -> HTMLResponse:
    entity = _entity(session, user, entity_id)
    values = {name: getattr(entity, name) or "" for name in FIELDS}
    values["vat_number"] = entity.vat_number or service.NOT_SUBJECT_TO_VAT
    return _form_page(request, user, entity=entity, values=values)


@router.post("/entites/{entity_id}", response_class=HTMLResponse)
async def update_entity(request: Request, entity_id: RecordId, user: BrokerAdmin, session: DbSession) -> Response:
    entity = _entity(session, user, entity_id)
    raw = await _posted(request)
    form = service.check_form(raw, current=entity)
    if not form.errors and service.save_entity(session, organisation_id=user.organisation_id, form=form,
                                               current=entity) is not None:
        flash(request, f"Entité juridique « {entity.name} » enregistrée.")
        return RedirectResponse("/entites", status_code=303)
    session.rollback()
    return _form_page(request, user, entity=entity, values=raw, errors=form.errors, status=422)
