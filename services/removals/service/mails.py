"""The removals mails, rendered from `templates/mails/` (developer-written, autoescaped HTML, plain text); the HTML
ones extend the one responsive mail layout (`core/templates/mail/layout.html`).

Keys are deterministic so that a retried activity finds its outbox row: one notification per (request, deposer),
one alert per (mandate, status), one reminder per (request, deposer), one overdue alert per (request, date).
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from core.maillayout import mail_environment
from core.outbox import NewMessage
from core.settings import Settings
from services.removals.service.queries import PARIS, MandateRow
from services.removals.service.rules import STATUS_LABELS
from services.removals.service.tokens import accept_all_url, mandate_urls

MAILS = Path(__file__).resolve().parent.parent / "templates" / "mails"
# Requester alerts, per status reached (subject as in the seed: "Acceptation de votre demande de dépose {VIN}").
ALERTS = {
    "acceptee": ("Acceptation de votre demande de dépose {vin}", "a accepté la demande de dépose suivante"),
    "refusee": ("Refus de votre demande de dépose {vin}", "a refusé la demande de dépose suivante"),
    "effectuee": ("Dépose effectuée {vin}", "a signalé la dépose suivante"),
    "annulee": ("Annulation de votre demande de dépose {vin}", "est informé de l'annulation de la demande de "
                                                               "dépose suivante"),
}
FOOTER = "Message envoyé par Relais pour le service Déposes."


@dataclass
class LinkedRow:
    row: MandateRow
    accept: str
    refuse: str
    confirm: str


@lru_cache
def _env() -> Environment:
    env = mail_environment(MAILS, trim_blocks=True, lstrip_blocks=True)
    env.filters["d"] = lambda v: v.strftime("%d/%m/%Y") if v else "non précisée"  # a free field left empty
    env.filters["dt"] = lambda v: v.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if v else "-"
    env.globals["labels"] = STATUS_LABELS
    return env


def _render(name: str, title: str, **ctx: Any) -> tuple[str, str]:
    """Text and HTML parts; `title` (the subject) titles the HTML document."""
    env = _env()
    html = env.get_template(f"{name}.html").render(title=title, preheader="", footer=FOOTER, **ctx)
    return env.get_template(f"{name}.txt").render(**ctx), html


def _linked(rows: list[MandateRow], settings: Settings) -> list[LinkedRow]:
    return [LinkedRow(r, *mandate_urls(settings, r.id)) for r in rows]


def alert_recipients(row: MandateRow) -> list[str]:
    """Who gets the requester's mails of a request: its tracking address and the other alert recipients."""
    return list(dict.fromkeys([row.tracking_email, *row.alert_emails]))


def notification_key(request_id: int, deposer_id: int) -> str:
    """The outbox key of a request's mail to a deposer: its mandates are Prévenu once this row is sent."""
    return f"removal-notify-{request_id}-deposer-{deposer_id}"


def deposer_notification(rows: list[MandateRow], settings: Settings, *, reminder: bool = False) -> NewMessage:
    """ONE mail per deposer and request, every vehicle with its links, and "Accepter tout"."""
    first = rows[0]
    key = (f"removal-reminder-{first.request_id}-deposer-{first.deposer_id}" if reminder
           else notification_key(first.request_id, first.deposer_id))
    subject = (f"Relance : demande de dépose #{first.request_no} de {first.requester_name} en attente de votre "
               f"réponse" if reminder else
               f"Demande de dépose #{first.request_no} de {first.requester_name} : {len(rows)} véhicule(s)")
    text, html = _render("deposer_notification", subject, first=first, items=_linked(rows, settings), reminder=reminder,
                         accept_all=accept_all_url(settings, first.request_id, first.deposer_id),
                         extranet=f"{settings.removals_url.rstrip('/')}/deposes")
    return NewMessage(key, [first.deposer_email or ""], subject, text, html)


def requester_received(groups: list[list[MandateRow]], settings: Settings,
                       failed: list[tuple[list[MandateRow], str]] | None = None) -> NewMessage:
    """One mail to the tracking address, once the deposers' mails are through: which deposers were told
    ("Prévenu"), with how many vehicles, and those whose mail the server refused (with its reply)."""
    failed = failed or []
    first = (groups or [g for g, _ in failed])[0][0]
    subject = f"Prise en compte de votre demande de dépose #{first.request_no}"
    text, html = _render("requester_received", subject, first=first, groups=groups, failed=failed,
                         url=f"{settings.removals_url.rstrip('/')}/demandes/{first.request_no}")
    return NewMessage(f"removal-request-{first.request_id}-prevenu", alert_recipients(first), subject, text, html)


def requester_alert(row: MandateRow, status: str, settings: Settings) -> NewMessage:
    subject_format, verb = ALERTS[status]
    subject = subject_format.format(vin=row.vin)
    text, html = _render("requester_alert", subject, row=row, status=status, verb=verb,
                         url=f"{settings.removals_url.rstrip('/')}/demandes/{row.request_no}")
    return NewMessage(f"removal-{row.id}-{status}", alert_recipients(row), subject, text, html)


def deposer_cancelled(row: MandateRow) -> NewMessage:
    subject = f"Annulation de la demande de dépose {row.vin}"
    text, html = _render("deposer_cancelled", subject, row=row)
    return NewMessage(f"removal-{row.id}-annulee-deposer", [row.deposer_email or ""], subject, text, html)


def requester_overdue(rows: list[MandateRow], settings: Settings) -> NewMessage:
    first = rows[0]
    subject = f"Dépose non effectuée à la date souhaitée : demande #{first.request_no}"
    text, html = _render("requester_overdue", subject, first=first, rows=rows,
                         url=f"{settings.removals_url.rstrip('/')}/demandes/{first.request_no}")
    assert first.desired_date is not None  # no date, no alert
    return NewMessage(f"removal-overdue-{first.request_id}-{first.desired_date.isoformat()}",
                      alert_recipients(first), subject, text, html)
