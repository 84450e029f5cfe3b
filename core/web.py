"""The app factory every service uses: middleware, login/logout, health, error pages, Temporal client."""

import asyncio
import uuid
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, FastAPI, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.exc import DataError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from core import passwordreset
from core.auth import DbSession, LoginRequired
from core.db import get_engine
from core.limits import BodySizeLimit, RateLimited
from core.linkpages import LINK_HEADERS
from core.logging import configure_logging, log
from core.params import database_refusal, french_errors
from core.security import authenticate
from core.settings import get_settings
from core.temporal import connect
from core.ui import csrf_protect, flash, make_templates

SESSION_COOKIE = "relais_session"
STATIC_DIR = Path(__file__).parent / "static"


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connected on first use so a service starts even if Temporal is down.

    Kept per event loop: a client belongs to the loop that connected it (tests serve one app from two).
    """
    clients: dict[asyncio.AbstractEventLoop, Client] = request.app.state.temporal_clients
    loop = asyncio.get_running_loop()
    if loop not in clients:
        clients[loop] = await connect()
    return clients[loop]


TemporalClient = Annotated[Client, Depends(get_temporal)]


def wants_html(request: Request) -> bool:
    """Pages answer in HTML unless the caller asked for JSON; the /api/ tree always answers JSON."""
    return not request.url.path.startswith("/api/") and "application/json" not in request.headers.get("accept", "")


def create_app(*, name: str, title: str, service_dir: Path, home: str = "/",
               ui_routers: tuple[APIRouter, ...] = (), api_routers: tuple[APIRouter, ...] = (),
               public_routers: tuple[APIRouter, ...] = ()) -> FastAPI:
    """Build one service. UI routers get CSRF checks; API routers authenticate with keys;
    public routers (action links) authenticate with their signed token."""
    configure_logging()
    settings = get_settings()
    templates = make_templates(service_dir)

    app = FastAPI(title=f"Relais — {title}", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.temporal_clients = {}
    app.state.name = name
    app.state.title = title
    app.state.templates = templates
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=not settings.is_dev,
    )

    app.add_middleware(RequestContext, service=name)
    app.add_middleware(BodySizeLimit)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(_health_router())
    app.include_router(_login_router(templates, home))
    app.include_router(_password_router(templates, name))
    for router in ui_routers:
        app.include_router(router, dependencies=[Depends(csrf_protect)])
    for router in (*api_routers, *public_routers):
        app.include_router(router)
    _install_error_pages(app, templates)
    return app


class RequestContext:
    """Binds a request id and the service name to every log line of the request, and answers with the id and the
    security headers. Pure ASGI: `@app.middleware("http")` would cost a task and a stream per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id", "")[:64] or uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, service=self.service)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _health_router() -> APIRouter:
    router = APIRouter(tags=["santé"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(_ping_db), timeout=5)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready"; say which
            checks["database"] = f"erreur : {type(exc).__name__}"
        try:
            client = await asyncio.wait_for(get_temporal(request), timeout=5)
            await asyncio.wait_for(client.service_client.check_health(), timeout=5)
            checks["temporal"] = "ok"
        except Exception as exc:
            checks["temporal"] = f"erreur : {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ready else "indisponible", **checks}, status_code=200 if ready else 503)

    return router


def _ping_db() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _login_router(templates: Jinja2Templates, home: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = home) -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next, home), "errors": {},
                                                                  "support_url": get_settings().support_url})

    @router.post("/login", response_class=HTMLResponse, dependencies=[Depends(csrf_protect)])
    def login(request: Request, session: DbSession, email: Annotated[str, Form()] = "",
              password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = home) -> Response:
        user = authenticate(session, email=email, password=password)
        if user is None:
            log.info("auth.login_failed", email=email)
            return templates.TemplateResponse(
                request, "login.html",
                {"next": _safe_next(next, home), "email": email, "support_url": get_settings().support_url,
                 "errors": {"password": "E-mail ou mot de passe incorrect."}},
                status_code=401,
            )
        request.session.clear()  # new session on login: no fixation
        request.session["user_id"] = user.id
        log.info("auth.login", user_id=user.id, organisation_id=user.organisation_id)
        flash(request, f"Bienvenue, {user.full_name}.")
        return RedirectResponse(_safe_next(next, home), status_code=303)

    @router.post("/logout", dependencies=[Depends(csrf_protect)])
    def logout(request: Request) -> RedirectResponse:
        request.session.clear()
        flash(request, "Vous êtes déconnecté.")
        return RedirectResponse("/login", status_code=303)

    return router


def _password_router(templates: Jinja2Templates, service: str) -> APIRouter:
    """«Mot de passe oublié ?» (`core.passwordreset`): ask the address, then the mailed link's page sets a new one."""
    router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

    def page(request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
        context = {"errors": {}, "support_url": get_settings().support_url, **ctx}
        return templates.TemplateResponse(request, name, context, status_code=status, headers=LINK_HEADERS)

    @router.get("/mot-de-passe-oublie", response_class=HTMLResponse)
    def forgot_page(request: Request) -> HTMLResponse:
        return page(request, "password_forgot.html")

    @router.post("/mot-de-passe-oublie", response_class=HTMLResponse)
    def forgot(request: Request, session: DbSession, email: Annotated[str, Form(max_length=320)] = "") -> Response:
        if "@" not in email.strip():
            return page(request, "password_forgot.html", 422, email=email,
                        errors={"email": "Indiquez l'adresse e-mail de votre compte."})
        settings = get_settings()
        try:
            passwordreset.request_reset(session, settings, email=email,
                                        client=request.client.host if request.client else "inconnu",
                                        base_url=settings.service_urls()[service])
        except RateLimited as exc:
            log.info("auth.reset_rate_limited", email=email)
            return page(request, "password_forgot.html", 429, email=email, errors={"email": exc.message})
        log.info("auth.reset_requested", email=email)
        # The same answer whether the address is a user's or not.
        return page(request, "password_forgot.html", sent=email.strip(), minutes=settings.password_reset_minutes)

    @router.get(passwordreset.PATH + "/{token}", response_class=HTMLResponse)
    def reset_page(request: Request, session: DbSession, token: str) -> HTMLResponse:
        try:
            checked = passwordreset.check_link(session, get_settings(), token)
        except passwordreset.ResetRefused as exc:
            return page(request, "password_reset.html", exc.status, refused=exc.message)
        return page(request, "password_reset.html", token=token, email=checked.user.email)

    @router.post(passwordreset.PATH + "/{token}", response_class=HTMLResponse)
    def reset(request: Request, session: DbSession, token: str, password: Annotated[str, Form()] = "",
              confirm: Annotated[str, Form()] = "") -> Response:
        settings = get_settings()
        try:
            checked = passwordreset.check_link(session, settings, token)
            if problem := passwordreset.password_problem(password, confirm):
                return page(request, "password_reset.html", 422, token=token, email=checked.user.email,
                            errors={"password": problem})
            user = passwordreset.reset_password(session, settings, token=token, password=password)
        except passwordreset.ResetRefused as exc:
            session.rollback()
            return page(request, "password_reset.html", exc.status, refused=exc.message)
        log.info("auth.password_reset", user_id=user.id)
        request.session.clear()
        flash(request, "Votre mot de passe a été changé : connectez-vous avec le nouveau.")
        return RedirectResponse("/login", status_code=303)

    return router


def _safe_next(target: str, home: str) -> str:
    """Only local paths: `next` must never send a user to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else home


def _install_error_pages(app: FastAPI, templates: Jinja2Templates) -> None:
    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if not wants_html(request):
            return JSONResponse({"detail": "Authentification requise."}, status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def refused_input(request: Request, exc: RequestValidationError) -> Response:
        errors = french_errors(exc.errors())
        if not wants_html(request):
            return JSONResponse({"detail": errors}, status_code=422)
        return templates.TemplateResponse(
            request, "error.html", {"status": 422, "message": " ".join(e["msg"] for e in errors)}, status_code=422)

    @app.exception_handler(DataError)
    async def refused_by_database(request: Request, exc: DataError) -> Response:
        # The safety net behind the schemas' bounds: a value PostgreSQL cannot store (NUL character, number out of
        # range) is the caller's error, not ours. The session was rolled back: nothing was written.
        log.warning("request.refused_by_database", error=str(exc.orig)[:300])
        message = database_refusal(exc)
        if not wants_html(request):
            return JSONResponse({"detail": message}, status_code=422)
        return templates.TemplateResponse(request, "error.html", {"status": 422, "message": message}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if not wants_html(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        message = detail or ("Page introuvable." if exc.status_code == 404 else "Requête refusée.")
        if exc.status_code == 404 and detail in (None, "Not Found"):
            message = "Page introuvable."
        return templates.TemplateResponse(
            request, "error.html", {"status": exc.status_code, "message": message},
            status_code=exc.status_code, headers=exc.headers,
        )
