"""Step 2, «Avis d'échéances par mail»: the queue's search, the users' actions, and how a notice's workflow applies
them.

A channel (screen, API) asks with `request_action`: under a row lock each notice is checked, the request is recorded
on it (`pending_*`) and its workflow is told (`core.signals`), all in the caller's transaction; a refused notice
changes nothing and says why. The notice's workflow then applies the request (`apply_pending`) or the robot's
outcome (`apply_outcome`): it is the only writer of `Notice.status`. A block can no longer win once the robot has
claimed the notice («envoi en cours»), and the robot never claims a notice with a request pending, so a notice
blocked before it is claimed is never sent.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.db import scoped, utcnow
from core.models import Organisation, User
from core.settings import Settings
from core.signals import queue_signal
from core.ui import PARIS
from services.notices.models import Client, Notice, NoticeEvent, NoticeSend
from services.notices.service.robot import wake_robot
from services.notices.service.statuses import LABELS
from workflows.data.notices import (
    ACTION,
    BLOCKED,
    CANCELLED,
    FAILED,
    SENT,
    VALIDATED,
    WAITING,
    Applied,
    NoticeAction,
    SendOutcome,
)

# action → (statuses it applies to, status it leads to, the verb of the messages)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "validate": (frozenset({WAITING, BLOCKED}), VALIDATED, "valider"),
    "block": (frozenset({WAITING, VALIDATED, FAILED}), BLOCKED, "bloquer"),
    "resend": (frozenset({FAILED, SENT}), VALIDATED, "renvoyer"),
    "cancel": (frozenset({WAITING, VALIDATED, FAILED, BLOCKED}), CANCELLED, "annuler"),
}
EVENTS = {"validate": "validated", "block": "blocked", "resend": "resent", "cancel": "cancelled"}
EVENT_LABELS = {"created": "Créé", "validated": "Validé", "blocked": "Bloqué", "resent": "Renvoi demandé",
                "cancelled": "Annulé", "sent": "Envoyé", "failed": "Erreur d'envoi", "refused": "Action refusée",
                "alerted": "Alerte envoyée"}
ROBOT = "Automate d'envoi"


@dataclass(frozen=True)
class Outcome:
    notice_id: int
    number: int | None
    refused: str | None  # None: accepted (applied in a moment by the notice's workflow)


class ActionInvalid(ValueError):
    """The request itself is wrong (unknown action, block without a reason): nothing is done."""


def refusal(notice: Notice, action: str) -> str | None:
    """Why `action` cannot apply to `notice` now (French), or None."""
    allowed, _, verb = TRANSITIONS[action]
    if notice.closed:
        return "ce dossier est clos (avis archivé)"
    if notice.pending_action is not None:
        return "une action est déjà en cours sur cet avis"
    if action == "block" and notice.claimed_at is not None:
        return "envoi en cours : l'automate a déjà pris cet avis"
    if notice.status not in allowed:
        return f"impossible de {verb} un avis au statut « {LABELS[notice.status]} »"
    return None


def request_action(session: Session, settings: Settings, *, user: User, notice_ids: list[int], action: str,
                   reason: str = "") -> list[Outcome]:
    """A user's request (screens)."""
    return request_as(session, settings, organisation_id=user.organisation_id, actor_id=user.id,
                      actor_name=user.full_name or user.email, notice_ids=notice_ids, action=action, reason=reason)


def request_as(session: Session, settings: Settings, *, organisation_id: int, actor_id: int | None,
               actor_name: str, notice_ids: list[int], action: str, reason: str = "") -> list[Outcome]:
    """Record `action` on each notice it can apply to and tell their workflows; say why for the others."""
    if action not in TRANSITIONS:
        raise ActionInvalid(f"Action inconnue « {action} » (valider, bloquer, renvoyer ou annuler).")
    reason = reason.strip()
    if action == "block" and not reason:
        raise ActionInvalid("Indiquez le motif du blocage (ex. adresse e-mail erronée).")
    if not notice_ids:
        raise ActionInvalid("Sélectionnez au moins un avis.")
    found = {n.id: n for n in session.scalars(scoped(Notice, organisation_id)
                                               .where(Notice.id.in_(notice_ids)).order_by(Notice.id)
                                               .with_for_update())}
    now, outcomes = utcnow(), []
    for notice_id in dict.fromkeys(notice_ids):
        notice = found.get(notice_id)
        if notice is None:
            outcomes.append(Outcome(notice_id, None, "cet avis n'existe pas"))
            continue
        if why := refusal(notice, action):
            outcomes.append(Outcome(notice_id, notice.number, why))
            continue
        notice.pending_action, notice.pending_reason = action, reason[:2000] or None
        notice.pending_by_id, notice.pending_by_name, notice.pending_at = actor_id, actor_name[:200], now
        queue_signal(session, organisation_id=notice.organisation_id, workflow_id=notice.workflow_id, signal=ACTION,
                     payload=NoticeAction(action), task_queue=settings.task_queue)
        outcomes.append(Outcome(notice_id, notice.number, None))
    return outcomes


def _applied(notice: Notice) -> Applied:
    return Applied(notice.status, LABELS[notice.status])


def apply_pending(session: Session, settings: Settings, notice_id: int) -> Applied:
    """The notice's workflow applies the recorded request (idempotent: none left, nothing done)."""
    notice = session.get(Notice, notice_id, with_for_update=True)
    assert notice is not None
    action = notice.pending_action
    if action is None:
        return _applied(notice)
    actor = notice.pending_by_name or "Système"
    allowed, target, _ = TRANSITIONS[action]
    before = notice.status
    if notice.status not in allowed or (action == "block" and notice.claimed_at is not None):
        session.add(NoticeEvent(notice_id=notice.id, actor_id=notice.pending_by_id, actor_name=actor,
                                action="refused", from_status=before, to_status=before,
                                detail=refusal(notice, action) or "transition impossible"))
    else:
        notice.status = target
        if target == VALIDATED:
            notice.validated_at = utcnow()
            notice.claimed_at = None
        if action == "block":
            notice.observations = f"Bloqué : {notice.pending_reason}"
        session.add(NoticeEvent(notice_id=notice.id, actor_id=notice.pending_by_id, actor_name=actor,
                                action=EVENTS[action], from_status=before, to_status=target,
                                detail=notice.pending_reason))
        if target == VALIDATED:
            organisation = session.get(Organisation, notice.organisation_id)
            assert organisation is not None
            wake_robot(session, settings, organisation)
    notice.pending_action = notice.pending_reason = notice.pending_by_name = None
    notice.pending_by_id = notice.pending_at = None
    return _applied(notice)


def apply_outcome(session: Session, notice_id: int, outcome: SendOutcome) -> Applied:
    """The robot's send is over: V → OK (with its date) or V → KO (the reply in «Observations»). Idempotent."""
    notice = session.get(Notice, notice_id, with_for_update=True)
    send = session.get(NoticeSend, outcome.send_id)
    assert notice is not None and send is not None and send.notice_id == notice.id
    if notice.status != VALIDATED or notice.claimed_at is None:
        return _applied(notice)  # already applied (a redelivered signal)
    before = notice.status
    if outcome.status == SENT:
        notice.status, notice.sent_at, notice.observations = SENT, send.finished_at or utcnow(), None
        notice.send_count += 1
    else:
        notice.status, notice.observations = FAILED, outcome.reply[:2000]
    notice.claimed_at = None
    session.add(NoticeEvent(notice_id=notice.id, actor_name=ROBOT, action="sent" if outcome.status == SENT
                            else "failed", from_status=before, to_status=notice.status,
                            detail=f"{send.email} — {outcome.reply}"[:2000]))
    return _applied(notice)


def close_notice(session: Session, notice_id: int) -> None:
    notice = session.get(Notice, notice_id, with_for_update=True)
    if notice is not None:
        notice.closed = True


# --- The queue's search («Critères de recherche») ------------------------------------------------------------------

@dataclass
class Search:
    user_name: str = ""
    printed_from: date | None = None
    printed_to: date | None = None
    dossier: str = ""
    email: str = ""
    sent_from: date | None = None
    sent_to: date | None = None
    statuses: list[str] = field(default_factory=list)
    run_id: int | None = None


def _paris_day(day: date, *, end: bool = False) -> datetime:
    moment = datetime.combine(day, time.min, tzinfo=PARIS)
    return moment + timedelta(days=1) if end else moment


def search_stmt(organisation_id: int, search: Search) -> Select[Notice, Client]:
    stmt = (select(Notice, Client).join(Client, Client.id == Notice.client_id)
            .where(Notice.organisation_id == organisation_id).order_by(Notice.created_at.desc(), Notice.id.desc()))
    if search.user_name:
        stmt = stmt.where(Notice.created_by_name.ilike(f"%{search.user_name}%"))
    if search.printed_from:
        stmt = stmt.where(Notice.created_at >= _paris_day(search.printed_from))
    if search.printed_to:
        stmt = stmt.where(Notice.created_at < _paris_day(search.printed_to, end=True))
    if search.dossier:
        stmt = stmt.where(Client.number == search.dossier)
    if search.email:
        stmt = stmt.where(Notice.email.ilike(f"%{search.email}%"))
    if search.sent_from:
        stmt = stmt.where(Notice.sent_at >= _paris_day(search.sent_from))
    if search.sent_to:
        stmt = stmt.where(Notice.sent_at < _paris_day(search.sent_to, end=True))
    if search.statuses:
        stmt = stmt.where(Notice.status.in_(search.statuses))
    if search.run_id:
        stmt = stmt.where(Notice.run_id == search.run_id)
    return stmt


LIST_LIMIT = 500  # rows the list shows at most (the page says how many more the search found)


def find_notices(session: Session, organisation_id: int, search: Search,
                 limit: int = LIST_LIMIT) -> list[tuple[Notice, Client]]:
    return [(row[0], row[1]) for row in session.execute(search_stmt(organisation_id, search).limit(limit))]


def count_notices(session: Session, organisation_id: int, search: Search) -> int:
    return session.scalar(select(func.count()).select_from(search_stmt(organisation_id, search)
                                                           .order_by(None).subquery())) or 0


def history(session: Session, notice: Notice) -> tuple[list[NoticeEvent], list[NoticeSend]]:
    events = list(session.scalars(select(NoticeEvent).where(NoticeEvent.notice_id == notice.id)
                                  .order_by(NoticeEvent.at, NoticeEvent.id)))
    sends = list(session.scalars(select(NoticeSend).where(NoticeSend.notice_id == notice.id)
                                 .order_by(NoticeSend.attempt)))
    return events, sends
