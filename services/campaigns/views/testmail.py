"""Envoi de test: a one-off mail to one driver, to check a text before a campaign."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import CurrentUser, DbSession, Manager
from core.outbox import STATUS_LABELS
from core.settings import get_settings
from core.ui import flash, render_page
from services.campaigns.fields import FIELDS
from services.campaigns.models import Driver
from services.campaigns.service import testmail as service

router = APIRouter()


def _render(request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
    return render_page(request, name, status, status_labels=STATUS_LABELS, fields=FIELDS, **ctx)


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/campagnes", status_code=303)


@router.get("/envois-test", response_class=HTMLResponse)
def test_mails(request: Request, user: CurrentUser, session: DbSession, statut: str = "",
               page: int = 1) -> HTMLResponse:
    drivers = service.drivers_for_select(session, organisation_id=user.organisation_id)
    rows = service.list_test_mails(session, organisation_id=user.organisation_id, status=statut or None, page=page)
    return _render(request, "test_mails.html", user=user, drivers=drivers, page=rows, statut=statut,
                   form={}, errors={})


@router.post("/envois-test", response_class=HTMLResponse)
def send_test_mail(request: Request, user: Manager, session: DbSession,
                   subject: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "",
                   driver_id: Annotated[str, Form()] = "") -> Response:
    test_mail, errors = service.create_test_mail(
        session, get_settings(), user=user, driver_id=int(driver_id) if driver_id.isdigit() else None,
        subject=subject, body=body)
    if test_mail is None:
        drivers = service.drivers_for_select(session, organisation_id=user.organisation_id)
        page = service.list_test_mails(session, organisation_id=user.organisation_id, status=None, page=1)
        return _render(request, "test_mails.html", 422, user=user, drivers=drivers, page=page, statut="",
                       form={"subject": subject, "body": body, "driver_id": driver_id}, errors=errors)
    driver = session.get(Driver, test_mail.driver_id)
    assert driver is not None
    flash(request, f"Envoi de test lancé vers {driver.email}.")
    return RedirectResponse(f"/envois-test/{test_mail.id}", status_code=303)


@router.get("/envois-test/{test_mail_id}", response_class=HTMLResponse)
def test_mail_detail(request: Request, test_mail_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    row = service.get_test_mail(session, organisation_id=user.organisation_id, test_mail_id=test_mail_id)
    if row is None:
        raise HTTPException(404, "Cet envoi de test n'existe pas.")
    settings = get_settings()
    return _render(request, "test_mail_detail.html", user=user, row=row, temporal_url=(
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{row.test_mail.workflow_id}"
    ))


@router.get("/envois-test/{test_mail_id}/statut", response_class=HTMLResponse)
def test_mail_status(request: Request, test_mail_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    row = service.get_test_mail(session, organisation_id=user.organisation_id, test_mail_id=test_mail_id)
    if row is None:
        raise HTTPException(404, "Cet envoi de test n'existe pas.")
    return _render(request, "_test_mail_status.html", row=row)
