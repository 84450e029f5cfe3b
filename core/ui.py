"""Server-rendered UI helpers shared by the four services: templates, flash, pagination, CSRF."""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from math import ceil
from pathlib import Path
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.settings import get_settings

CORE_TEMPLATES = Path(__file__).parent / "templates"
T = TypeVar("T")
PARIS = ZoneInfo("Europe/Paris")  # every date and time a user reads, whatever the server's or PostgreSQL's zone
DATETIME_FORMAT = "%d/%m/%Y à %Hh%M"  # the seed's "18/06/2025 à 15h27"
DATE_FORMAT = "%d/%m/%Y"


# --- dates and times: always shown in Paris time ---

def to_paris(value: datetime) -> datetime:
    """The same instant on Paris clocks; a naive value is taken as UTC (what the database stores)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(PARIS)


def paris(value: datetime | date | None, fmt: str = DATETIME_FORMAT, empty: str = "-") -> str:
    """A datetime as Paris shows it (`{{ x|paris("%d/%m/%Y %H:%M") }}`); a plain date is shown as it is."""
    if not value:
        return empty
    if isinstance(value, datetime):
        value = to_paris(value)
    return value.strftime(fmt)


def today_paris() -> date:
    """Today's date in Paris (what a French user calls today), not the server's."""
    return datetime.now(PARIS).date()


def paris_date(value: datetime | date | None) -> str:
    """The day (jj/mm/aaaa): a datetime's day in Paris, a plain date as it is (the `d` filter)."""
    return paris(value, DATE_FORMAT)


def make_templates(service_dir: Path) -> Jinja2Templates:
    """Service templates first, then the shared layout, macros and pages of `core/templates`."""
    templates = Jinja2Templates(directory=str(service_dir / "templates"))
    templates.env.loader = ChoiceLoader(
        [FileSystemLoader(str(service_dir / "templates")), FileSystemLoader(str(CORE_TEMPLATES))]
    )
    settings = get_settings()
    # Outside dev, templates are compiled once and never looked up again on disk (two stats per render saved).
    templates.env.auto_reload = settings.environment == "dev"
    templates.env.globals.update(
        service_urls=settings.service_urls(),
        temporal_ui_url=settings.temporal_ui_url,
        mailcatcher_url=settings.mailcatcher_url,
        csrf_token=csrf_token,
        pop_flashes=pop_flashes,
    )
    templates.env.filters["paris"] = paris
    templates.env.filters["dt"] = paris  # "29/03/2026 à 00h30"
    templates.env.filters["d"] = paris_date  # "29/03/2026"
    return templates


# --- flash messages (kept in the signed session cookie until shown) ---

def flash(request: Request, message: str, category: str = "success") -> None:
    # Assign (not append in place): the session cookie is only re-sent when a key is set.
    request.session["_flashes"] = [*request.session.get("_flashes", []), [category, message]]


def pop_flashes(request: Request) -> list[list[str]]:
    return request.session.pop("_flashes", [])


# --- CSRF: a per-session token, rendered in every form, checked on every unsafe request ---

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token(request: Request) -> str:
    token = request.session.get("_csrf")
    if not token:
        token = request.session["_csrf"] = secrets.token_urlsafe(32)
    return str(token)


async def csrf_protect(request: Request) -> None:
    """Router dependency: POST/PUT/PATCH/DELETE must echo the session's token (form field or header)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = request.session.get("_csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise HTTPException(403, "Jeton CSRF manquant ou invalide : rechargez la page et recommencez.")


# --- pagination ---

@dataclass
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))


def paginate(session: Session, stmt: Select, *, page: int = 1, per_page: int = 25) -> Page[Any]:  # type: ignore[type-arg]
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    window = stmt.limit(per_page).offset((page - 1) * per_page)
    # One entity per row → the entities; several (a join) → rows. (Split in two statements: mypy 2.4
    # crashes inferring the overloads of a conditional expression here.)
    items: list[Any]
    if len(stmt.column_descriptions) == 1:  # noqa: SIM108
        items = list(session.scalars(window))
    else:
        items = list(session.execute(window).all())
    return Page(items, page, per_page, total)


def render_page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page of the app's templates (`user`, forms, pages... come in `ctx`)."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def author_names(session: Session, rows: Iterable[Any]) -> dict[int, str]:
    """Full names of the users in rows' created_by_id / updated_by_id, in one query (for "Créé par")."""
    from core.models import User

    ids = {i for r in rows for i in (getattr(r, "created_by_id", None), getattr(r, "updated_by_id", None)) if i}
    if not ids:
        return {}
    return {uid: name for uid, name in session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))}
