"""Pages behind action links: GET shows what the link will do and changes nothing, POST acts once."""

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from core.db import session_scope
from core.links import ActionLink, LinkAlreadyUsed, LinkError, consume, is_used, read_token
from core.logging import log

# Mail scanners and proxies must neither cache these pages nor leak the token in a Referer.
LINK_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class LinkAction:
    purpose: str
    heading: str
    action_label: str
    # Both receive the verified link; `describe` must not write, `act` returns the done message.
    describe: Callable[[Session, ActionLink], str]
    act: Callable[[Session, ActionLink], str]


def add_link_routes(router: APIRouter, path: str, action: LinkAction, templates: Jinja2Templates) -> None:
    def page(request: Request, status: int = 200, **ctx: object) -> HTMLResponse:
        context = {"heading": action.heading, "action_label": None, "message": None, "error": False, **ctx}
        return templates.TemplateResponse(request, "link_page.html", context, status_code=status,
                                          headers=LINK_HEADERS)

    def refused(request: Request, exc: LinkError) -> HTMLResponse:
        log.info("link.refused", purpose=action.purpose, reason=type(exc).__name__)
        return page(request, exc.status, message=exc.message, error=True)

    @router.get(f"{path}/{{token}}", response_class=HTMLResponse, include_in_schema=False)
    def confirm(request: Request, token: str) -> HTMLResponse:
        try:
            link = read_token(token, action.purpose)
            with session_scope() as session:
                if is_used(session, link):
                    raise LinkAlreadyUsed
                description = action.describe(session, link)
                session.rollback()  # GET changes nothing, whatever `describe` touched
        except LinkError as exc:
            return refused(request, exc)
        return page(request, message=description, action_label=action.action_label)

    @router.post(f"{path}/{{token}}", response_class=HTMLResponse, include_in_schema=False)
    def act(request: Request, token: str) -> HTMLResponse:
        try:
            with session_scope() as session:
                link = consume(session, token, action.purpose)
                done = action.act(session, link)
        except LinkError as exc:
            return refused(request, exc)
        log.info("link.used", purpose=action.purpose, subject=link.subject)
        return page(request, message=done)

