"""Beyond the seed: the account manager («Chargé clientèle») is told when a notice is still E, B or KO a few days
(`RobotSettings.alert_days`) before its due date — the client would otherwise get no notice in time. A client
record without the account manager's e-mail sends the alert to the user who made the run; the notice's history
says who was told."""

from html import escape

from sqlalchemy.orm import Session

from core.db import utcnow
from core.maillayout import wrap_mail_html
from core.models import User
from core.outbox import NewMessage, enqueue_many
from core.settings import Settings
from services.notices.models import Client, Notice, NoticeEvent, NoticeRun
from services.notices.service.statuses import LABELS
from workflows.data.notices import BLOCKED, FAILED, WAITING

STUCK = (WAITING, BLOCKED, FAILED)
FALLBACK_NOTE = ("Vous recevez cette alerte parce que vous avez lancé l'édition de cet avis et que la fiche client "
                 "n'indique pas l'adresse e-mail de son chargé clientèle.")


def alert_if_stuck(session: Session, settings: Settings, notice_id: int) -> int | None:
    """The alert's outbox id, written once (None: the notice moved on, was alerted, or nobody to tell)."""
    notice = session.get(Notice, notice_id, with_for_update=True)
    assert notice is not None
    if notice.status not in STUCK or notice.alerted_at is not None:
        return None
    client = session.get(Client, notice.client_id)
    assert client is not None
    to, who = _recipient(session, notice, client)
    if not to:
        return None
    due = notice.due_date.strftime("%d/%m/%Y")
    name = " ".join(p for p in (client.first_name, client.last_name) if p)
    subject = f"Avis d'échéance n°{notice.number} non envoyé — échéance du {due} ({client.number} {name})"
    lines = [f"L'avis d'échéance n°{notice.number} du dossier {client.number} ({name}) est toujours au statut "
             f"« {LABELS[notice.status]} », pour une échéance le {due}.",
             f"Observations : {notice.observations}" if notice.observations else "",
             "Ouvrez « Avis d'échéances par mail » pour le valider, le renvoyer ou prévenir le client.",
             "" if to == (client.account_manager_email or "").strip() else FALLBACK_NOTE]
    text = "\n\n".join(line for line in lines if line)
    html = wrap_mail_html("".join(f"<p>{escape(line)}</p>" for line in lines if line), title=subject)
    message = NewMessage(key=f"avis-{notice.id}-alerte", to=[to], subject=subject, text=text, html=html)
    outbox_id = enqueue_many(session, settings=settings, organisation_id=notice.organisation_id,
                             messages=[message])[message.key]
    notice.alerted_at = utcnow()
    session.add(NoticeEvent(notice_id=notice.id, actor_name="Système", action="alerted", from_status=notice.status,
                            to_status=notice.status, detail=f"Alerte envoyée à {to} ({who})"))
    return outbox_id


def _recipient(session: Session, notice: Notice, client: Client) -> tuple[str, str]:
    """Who is told, and as whom: the «Chargé clientèle», else the (active) user who made the notice's run."""
    if to := (client.account_manager_email or "").strip():
        return to, f"chargé clientèle{f' {client.account_manager}' if client.account_manager else ''}"
    run = session.get(NoticeRun, notice.run_id) if notice.run_id else None
    user_id = run.created_by_id if run is not None else notice.created_by_id
    user = session.get(User, user_id) if user_id else None
    if user is None or not user.is_active or user.organisation_id != notice.organisation_id:
        return "", ""
    made = f"l'édition n°{run.id}" if run is not None else "l'avis"
    return user.email, f"{user.full_name or user.email}, qui a lancé {made} : pas d'e-mail de chargé clientèle"
