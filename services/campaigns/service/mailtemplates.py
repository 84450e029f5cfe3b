"""Modèles de mail: validation (known fields only, no external link), CRUD, rendering for a driver."""

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped, utcnow
from core.maillayout import wrap_mail_html
from core.models import User
from core.rendering import render, render_text_as_html
from core.settings import Settings
from services.campaigns.fields import FIELDS, LINK_FIELD, driver_context, field_name
from services.campaigns.links import driver_space_url
from services.campaigns.models import Campaign, Driver, Fine, MailTemplate, Vehicle, WorkflowDefinition

MAIL_FOOTER = "Message envoyé par votre gestionnaire de flotte."
EXTERNAL_LINK_MESSAGE = "Il n'est pas possible d'intégrer des liens externes"
_FIELD = re.compile(r"{{(.*?)}}")
_TLDS = ("fr|com|net|org|eu|io|info|biz|be|ch|de|uk|es|it|nl|lu|re|co|me|app|dev|xyz|online|site|shop|store|"
         "link|click|ly|gl|to|tk|ru|cn|us|ca|ma|tn|dz|sn|ci|pro|tech|top|live|email|cloud|gouv|ai|tv|cc|ws|pw|in")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Every form a link can take in a mail: any scheme, pseudo-schemes, "www.", a bare domain name.
_LINKS = [
    re.compile(r"[a-z][a-z0-9+.\-]*\s*:\s*//"),
    re.compile(r"\b(?:javascript|vbscript|data|mailto|file|tel|sms)\s*:"),
    re.compile(r"\bwww\d*\s*\."),
    re.compile(rf"(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\s?\.\s?)+(?:{_TLDS})(?![\w\-])"),
    # A bare IPv4 address (192.168.1.10/login), or an IPv6 one in brackets.
    re.compile(rf"(?<![\w.])(?:{_OCTET}\s?\.\s?){{3}}{_OCTET}(?!\d|\s?\.\s?\d)"),
    re.compile(r"\[[0-9a-f.]*:[0-9a-f.]*:[0-9a-f:.]*\]"),
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
            name = field_name(match.group(1))
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


def _step_template_id(step: dict[str, object]) -> int | None:
    raw = step.get("template_id")
    return int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit()) else None


def workflow_uses(session: Session, *, template: MailTemplate) -> list[tuple[str, list[str]]]:
    """The organisation's workflows with a Mail step sending `template`: (workflow name, [step names])."""
    uses: list[tuple[str, list[str]]] = []
    stmt = scoped(WorkflowDefinition, template.organisation_id).order_by(WorkflowDefinition.name)
    for definition in session.scalars(stmt):
        steps = [str(step.get("name") or f"étape {number}")
                 for number, step in enumerate(definition.steps or [], start=1)
                 if step.get("type") == "mail" and _step_template_id(step) == template.id]
        if steps:
            uses.append((definition.name, steps))
    return uses


def _uses_message(template: MailTemplate, uses: list[tuple[str, list[str]]]) -> str:
    def one(name: str, steps: list[str]) -> str:
        label = "étape" if len(steps) == 1 else "étapes"
        return f"« {name} » ({label} {', '.join(f'« {s} »' for s in steps)})"

    listed = [one(name, steps) for name, steps in uses]
    if len(listed) == 1:
        return (f"Le modèle « {template.name} » est utilisé par le workflow {listed[0]} : "
                "retirez-le du workflow avant de le supprimer.")
    return (f"Le modèle « {template.name} » est utilisé par les workflows {', '.join(listed[:-1])} et "
            f"{listed[-1]} : retirez-le de ces workflows avant de le supprimer.")


def delete(session: Session, *, template: MailTemplate) -> str | None:
    """Delete the template, unless a campaign or a workflow step uses it: then the refusal, and nothing changes.

    The row is locked first: a workflow saved meanwhile with this template (its validation takes a share lock on
    the templates it names) either commits before, and is seen here, or waits and then finds no template.
    """
    session.execute(select(MailTemplate.id).where(MailTemplate.id == template.id).with_for_update())
    stmt = scoped(Campaign, template.organisation_id).where(Campaign.template_id == template.id)
    if campaign := session.scalars(stmt.order_by(Campaign.id)).first():
        return f"Le modèle « {template.name} » est utilisé par la campagne « {campaign.name} » : " \
               "il ne peut pas être supprimé."
    if uses := workflow_uses(session, template=template):
        return _uses_message(template, uses)
    session.delete(template)
    session.flush()
    return None


@dataclass
class RenderedMail:
    subject: str
    text: str
    html: str  # the body alone (what previews show)

    def document(self, *, after_html: str = "") -> str:
        """The mail's HTML part: the body (then `after_html`) inside the one responsive mail layout."""
        return wrap_mail_html(self.html + after_html, title=self.subject, footer=MAIL_FOOTER)


def current_vehicles(session: Session, driver_ids: list[int]) -> dict[int, Vehicle]:
    """The vehicle each driver drives (the most recently updated when several), in one query."""
    vehicles: dict[int, Vehicle] = {}
    stmt = select(Vehicle).where(Vehicle.driver_id.in_(driver_ids)).order_by(Vehicle.updated_at)
    for vehicle in session.scalars(stmt):
        vehicles[vehicle.driver_id] = vehicle  # type: ignore[index]
    return vehicles


def canonical_fields(source: str) -> str:
    """`source` with each known field under its one name: `{{ date_dernier_relevé }}` → `{{date_dernier_releve}}`."""
    def one(match: re.Match[str]) -> str:
        name = field_name(match.group(1))
        return "{{" + name + "}}" if name in FIELDS else match.group(0)

    return _FIELD.sub(one, source)


def render_for_driver(subject: str, body: str, *, driver: Driver, vehicle: Vehicle | None, settings: Settings,
                      link: str | None = None, fine: Fine | None = None) -> RenderedMail:
    """Subject, text and HTML of one mail; `link` overrides the driver-space link (previews)."""
    url = link or driver_space_url(settings, driver.id)
    text_ctx = driver_context(driver, vehicle, link=url, fine=fine)
    html_ctx = driver_context(driver, vehicle, link=url, html=True, fine=fine)
    subject, body = canonical_fields(subject), canonical_fields(body)
    return RenderedMail(render(subject, text_ctx), render(body, text_ctx), render_text_as_html(body, html_ctx))
