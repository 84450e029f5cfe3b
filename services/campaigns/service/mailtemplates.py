"""Modèles de mail: validation (known fields only, no external link), CRUD, rendering for a driver."""

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped, utcnow
from core.models import User
from core.rendering import render, render_text_as_html
from core.settings import Settings
from services.campaigns.fields import FIELDS, LINK_FIELD, driver_context
from services.campaigns.links import driver_space_url
from services.campaigns.models import Driver, Fine, MailTemplate, Vehicle

EXTERNAL_LINK_MESSAGE = "Il n'est pas possible d'intégrer des liens externes"
_FIELD = re.compile(r"{{(.*?)}}")
_TLDS = ("fr|com|net|org|eu|io|info|biz|be|ch|de|uk|es|it|nl|lu|re|co|me|app|dev|xyz|online|site|shop|store|"
         "link|click|ly|gl|to|tk|ru|cn|us|ca|ma|tn|dz|sn|ci|pro|tech|top|live|email|cloud|gouv|ai|tv|cc|ws|pw|in")
# Every form a link can take in a mail: any scheme, pseudo-schemes, "www.", a bare domain name.
_LINKS = [
    re.compile(r"[a-z][a-z0-9+.\-]*\s*:\s*//"),
    re.compile(r"\b(?:javascript|vbscript|data|mailto|file|tel|sms)\s*:"),
    re.compile(r"\bwww\d*\s*\."),
    re.compile(rf"(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\s?\.\s?)+(?:{_TLDS})(?![\w\-])"),
]


def find_external_link(text: str) -> str | None:
    """The first thing in `text` that looks like a link, whatever its disguise (case, full-width, spaces)."""
    normalised = unicodedata.normalize("NFKC", text).lower()
    for pattern in _LINKS:
        if match := pattern.search(normalised):
            return match.group(0)
    return None


def check_text(text: str, where: str, *, allow_link_field: bool) -> list[str]:
    """French errors for `text` (the subject or the content), each naming the line."""
    errors: list[str] = []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        place = f"{where}, ligne {number}"
        if "{%" in line or "{#" in line:
            errors.append(f"{place} : seuls les champs dynamiques de la forme {{{{champ}}}} sont permis.")
        for match in _FIELD.finditer(line):
            name = match.group(1).strip()
            if name not in FIELDS:
                errors.append(f"{place} : champ inconnu « {{{{{name}}}}} ». Champs possibles : {', '.join(FIELDS)}.")
            elif name == LINK_FIELD and not allow_link_field:
                errors.append(f"{place} : {{{{{LINK_FIELD}}}}} n'est possible que dans le contenu du mail.")
        rest = _FIELD.sub(" ", line)
        if "{{" in rest or "}}" in rest:
            errors.append(f"{place} : accolades non fermées, écrivez les champs sous la forme {{{{champ}}}}.")
        if found := find_external_link(rest):
            errors.append(f"{place} : {EXTERNAL_LINK_MESSAGE} (« {found.strip()} »).")
    return errors


@dataclass
class TemplateForm:
    name: str = ""
    subject: str = ""
    body: str = ""


def validate(session: Session, *, organisation_id: int, form: TemplateForm,
             template_id: int | None = None) -> dict[str, str]:
    """Errors by field name; empty when the template can be saved."""
    errors: dict[str, str] = {}
    if not form.name.strip():
        errors["name"] = "Le nom du modèle est obligatoire."
    else:
        same_name = scoped(MailTemplate, organisation_id).where(MailTemplate.name == form.name.strip())
        same = session.scalars(same_name).first()
        if same is not None and same.id != template_id:
            errors["name"] = "Un modèle porte déjà ce nom."
    if not form.subject.strip():
        errors["subject"] = "Le sujet est obligatoire."
    elif "\n" in form.subject or "\r" in form.subject:
        errors["subject"] = "Le sujet doit tenir sur une ligne."
    elif problems := check_text(form.subject, "Sujet", allow_link_field=False):
        errors["subject"] = " ".join(problems)
    if not form.body.strip():
        errors["body"] = "Le contenu du mail est obligatoire."
    elif problems := check_text(form.body, "Contenu", allow_link_field=True):
        errors["body"] = " ".join(problems)
    return errors


def save(session: Session, *, user: User, form: TemplateForm, template: MailTemplate | None = None) -> MailTemplate:
    """Create or update (the caller validated first)."""
    if template is None:
        template = MailTemplate(organisation_id=user.organisation_id, created_by_id=user.id)
        session.add(template)
    else:
        template.updated_by_id = user.id
        template.updated_at = utcnow()
    template.name, template.subject, template.body = form.name.strip(), form.subject.strip(), form.body
    session.flush()
    return template


def list_templates(session: Session, *, organisation_id: int) -> list[MailTemplate]:
    return list(session.scalars(scoped(MailTemplate, organisation_id).order_by(MailTemplate.name)))


def get_template(session: Session, *, organisation_id: int, template_id: int) -> MailTemplate | None:
    return get_scoped(session, MailTemplate, template_id, organisation_id)


@dataclass
class RenderedMail:
    subject: str
    text: str
    html: str


def current_vehicles(session: Session, driver_ids: list[int]) -> dict[int, Vehicle]:
    """The vehicle each driver drives (the most recently updated when several), in one query."""
    vehicles: dict[int, Vehicle] = {}
    stmt = select(Vehicle).where(Vehicle.driver_id.in_(driver_ids)).order_by(Vehicle.updated_at)
    for vehicle in session.scalars(stmt):
        vehicles[vehicle.driver_id] = vehicle  # type: ignore[index]
    return vehicles


def render_for_driver(subject: str, body: str, *, driver: Driver, vehicle: Vehicle | None, settings: Settings,
                      link: str | None = None, fine: Fine | None = None) -> RenderedMail:
    """Subject, text and HTML of one mail; `link` overrides the driver-space link (previews)."""
    url = link or driver_space_url(settings, driver.id)
    text_ctx = driver_context(driver, vehicle, link=url, fine=fine)
    html_ctx = driver_context(driver, vehicle, link=url, html=True, fine=fine)
    return RenderedMail(render(subject, text_ctx), render(body, text_ctx), render_text_as_html(body, html_ctx))
