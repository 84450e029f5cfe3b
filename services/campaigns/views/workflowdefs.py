"""Workflows (definitions): table, create / edit with a server-side step editor (add, insert +, delete), delete."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import CurrentUser, DbSession, Manager
from core.models import User
from core.ui import author_names, flash, render_page
from services.campaigns.models import WorkflowDefinition
from services.campaigns.service import mailtemplates
from services.campaigns.service import workflowdefs as service

router = APIRouter(prefix="/workflows")


@dataclass
class PostedForm:
    form: service.WorkflowForm
    action: str


async def _posted(request: Request) -> PostedForm:
    """The editor's fields (steps arrive as steps-N-type, steps-N-name...) and the button pressed."""
    data = await request.form()
    fields = {key: value for key, value in data.items() if isinstance(value, str)}
    return PostedForm(service.parse_form(fields), fields.get("action", "save"))


Posted = Annotated[PostedForm, Depends(_posted)]


def _definition(session: DbSession, user: User, definition_id: int) -> WorkflowDefinition:
    definition = service.get_definition(session, organisation_id=user.organisation_id, definition_id=definition_id)
    if definition is None:
        raise HTTPException(404, "Ce workflow n'existe pas.")
    return definition


def _form_page(request: Request, session: DbSession, user: User, form: service.WorkflowForm,
               errors: dict[str, str], definition: WorkflowDefinition | None, status: int = 200) -> HTMLResponse:
    return render_page(request, "workflowdef_form.html", status, user=user, form=form, errors=errors,
                       definition=definition, default_names=form.default_names(), families=service.FAMILIES,
                       family_descriptions=service.FAMILY_DESCRIPTIONS, step_types=service.STEP_TYPES,
                       step_type_descriptions=service.STEP_TYPE_DESCRIPTIONS, recipients=service.RECIPIENTS,
                       cc_choices=service.CC,
                       templates=mailtemplates.list_templates(session, organisation_id=user.organisation_id))


@router.get("", response_class=HTMLResponse)
def list_definitions(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    definitions = service.list_definitions(session, organisation_id=user.organisation_id)
    return render_page(request, "workflowdefs.html", user=user, definitions=definitions, families=service.FAMILIES,
                       names=author_names(session, definitions))


@router.get("/nouveau", response_class=HTMLResponse)
def new_definition(request: Request, user: Manager, session: DbSession) -> HTMLResponse:
    return _form_page(request, session, user, service.WorkflowForm(), {}, None)


@router.post("/nouveau", response_class=HTMLResponse)
def create_definition(request: Request, user: Manager, session: DbSession, posted: Posted) -> Response:
    return _submit(request, session, user, posted, None)


@router.get("/{definition_id}/modifier", response_class=HTMLResponse)
def edit_definition(request: Request, definition_id: int, user: Manager, session: DbSession) -> HTMLResponse:
    definition = _definition(session, user, definition_id)
    return _form_page(request, session, user, service.WorkflowForm.from_definition(definition), {}, definition)


@router.post("/{definition_id}/modifier", response_class=HTMLResponse)
def update_definition(request: Request, definition_id: int, user: Manager, session: DbSession,
                      posted: Posted) -> Response:
    return _submit(request, session, user, posted, _definition(session, user, definition_id))


def _submit(request: Request, session: DbSession, user: User, posted: PostedForm,
            definition: WorkflowDefinition | None) -> Response:
    form = posted.form
    if posted.action != "save":  # a step-list edit: shown again, nothing saved until "Enregistrer"
        if not service.apply_action(form, posted.action):
            raise HTTPException(400, "Action inconnue : rechargez la page et recommencez.")
        return _form_page(request, session, user, form, {}, definition)
    errors = service.validate(session, organisation_id=user.organisation_id, form=form,
                              definition_id=definition.id if definition else None)
    if errors:
        return _form_page(request, session, user, form, errors, definition, 422)
    saved = service.save(session, user=user, form=form, definition=definition)
    flash(request, f"Le workflow « {saved.name} » est enregistré.")
    return RedirectResponse("/workflows", status_code=303)


@router.post("/{definition_id}/supprimer")
def delete_definition(request: Request, definition_id: int, user: Manager, session: DbSession) -> RedirectResponse:
    definition = _definition(session, user, definition_id)
    name = definition.name
    if refusal := service.delete(session, definition=definition):
        flash(request, refusal, "error")
    else:
        flash(request, f"Le workflow « {name} » est supprimé.")
    return RedirectResponse("/workflows", status_code=303)
