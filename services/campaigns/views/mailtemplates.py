"""Modèles de mail: table, create / edit with dynamic fields, preview for a driver, delete."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import CurrentUser, DbSession, Manager
from core.db import get_scoped
from core.models import User
from core.rendering import RenderError
from core.settings import get_settings
from core.ui import author_names, flash, render_page
from services.campaigns.fields import ALIASES, FIELDS
from services.campaigns.models import Driver, MailTemplate
from services.campaigns.service import mailtemplates as service
from services.campaigns.service.testmail import drivers_for_select

router = APIRouter(prefix="/modeles")
PREVIEW_LINK = "#apercu-lien-espace-conducteur"


def _template(session: DbSession, user: User, template_id: int) -> MailTemplate:
    template = service.get_template(session, organisation_id=user.organisation_id, template_id=template_id)
    if template is None:
        raise HTTPException(404, "Ce modèle de mail n'existe pas.")
    return template


def _preview(session: DbSession, user: User, subject: str, body: str, driver_id: int | None) -> object:
    driver = get_scoped(session, Driver, driver_id, user.organisation_id) if driver_id else None
    if driver is None:  # the first driver of the picker, so what is shown matches what is selected
        driver = next(iter(drivers_for_select(session, organisation_id=user.organisation_id)), None)
    if driver is None:
        return None
    vehicle = service.current_vehicles(session, [driver.id]).get(driver.id)
    try:
        return service.render_for_driver(subject, body, driver=driver, vehicle=vehicle, settings=get_settings(),
                                         link=PREVIEW_LINK)
    except RenderError as exc:
        return str(exc)


def _form_page(request: Request, session: DbSession, user: User, form: service.TemplateForm,
               errors: dict[str, str], template: MailTemplate | None, status: int = 200,
               preview: object = None, driver_id: int | None = None) -> HTMLResponse:
    return render_page(request, "mailtemplate_form.html", status, user=user, form=form, errors=errors,
                       template=template, fields=FIELDS, aliases=ALIASES, preview=preview, driver_id=driver_id,
                       drivers=drivers_for_select(session, organisation_id=user.organisation_id))


@router.get("", response_class=HTMLResponse)
def list_templates(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    templates = service.list_templates(session, organisation_id=user.organisation_id)
    return render_page(request, "mailtemplates.html", user=user, templates=templates,
                       names=author_names(session, templates))


@router.get("/nouveau", response_class=HTMLResponse)
def new_template(request: Request, user: Manager, session: DbSession) -> HTMLResponse:
    return _form_page(request, session, user, service.TemplateForm(), {}, None)


@router.post("/nouveau", response_class=HTMLResponse)
def create_template(request: Request, user: Manager, session: DbSession, name: Annotated[str, Form()] = "",
                    subject: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "",
                    action: Annotated[str, Form()] = "save", driver_id: Annotated[int | None, Form()] = None
                    ) -> Response:
    return _submit(request, session, user, service.TemplateForm(name, subject, body), None, action, driver_id)


@router.get("/{template_id}", response_class=HTMLResponse)
def show_template(request: Request, template_id: int, user: CurrentUser, session: DbSession,
                  driver_id: int | None = None) -> HTMLResponse:
    template = _template(session, user, template_id)
    preview = _preview(session, user, template.subject, template.body, driver_id)
    return render_page(request, "mailtemplate.html", user=user, template=template, preview=preview,
                       driver_id=driver_id, drivers=drivers_for_select(session, organisation_id=user.organisation_id))


@router.get("/{template_id}/modifier", response_class=HTMLResponse)
def edit_template(request: Request, template_id: int, user: Manager, session: DbSession) -> HTMLResponse:
    template = _template(session, user, template_id)
    form = service.TemplateForm(template.name, template.subject, template.body)
    return _form_page(request, session, user, form, {}, template)


@router.post("/{template_id}/modifier", response_class=HTMLResponse)
def update_template(request: Request, template_id: int, user: Manager, session: DbSession,
                    name: Annotated[str, Form()] = "", subject: Annotated[str, Form()] = "",
                    body: Annotated[str, Form()] = "", action: Annotated[str, Form()] = "save",
                    driver_id: Annotated[int | None, Form()] = None) -> Response:
    template = _template(session, user, template_id)
    return _submit(request, session, user, service.TemplateForm(name, subject, body), template, action, driver_id)


def _submit(request: Request, session: DbSession, user: User, form: service.TemplateForm,
            template: MailTemplate | None, action: str, driver_id: int | None) -> Response:
    errors = service.validate(session, organisation_id=user.organisation_id, form=form,
                              template_id=template.id if template else None)
    if errors or action == "preview":
        preview = None if errors else _preview(session, user, form.subject, form.body, driver_id)
        return _form_page(request, session, user, form, errors, template, 422 if errors else 200, preview, driver_id)
    saved = service.save(session, user=user, form=form, template=template)
    flash(request, f"Le modèle « {saved.name} » est enregistré.")
    return RedirectResponse(f"/modeles/{saved.id}", status_code=303)


@router.post("/{template_id}/supprimer")
def delete_template(request: Request, template_id: int, user: Manager, session: DbSession) -> RedirectResponse:
    template = _template(session, user, template_id)
    if refusal := service.delete(session, template=template):
        flash(request, refusal, "error")
        return RedirectResponse("/modeles", status_code=303)
    flash(request, f"Le modèle « {template.name} » est supprimé.")
    return RedirectResponse("/modeles", status_code=303)
