"""The «Automate d'envoi»: its settings, and the steps of its sends, called by the robot's activity.

In the order they were validated: `claim_sends` claims the next notices (never one with a request pending: a block
recorded first always wins) and writes their sends and outbox rows (the PDF named by its storage key, From,
Reply-To, Bcc from the settings) in one transaction, before anything goes out; the activity sends them;
`record_replies` writes a group of replies on the sends and outbox rows and tells each notice's workflow, in one
transaction. With a pause between mails the robot claims one notice at a time; without one it claims a few ahead.
A crash can re-send only what was accepted and not yet recorded: the mail in flight plus the group waiting for its
commit (`activities.recorder.GROUP_LIMIT`). The robot never writes a notice's status.
"""

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import utcnow
from core.maillayout import wrap_mail_html
from core.models import Organisation, OutboxMessage, User
from core.outbox import Attachment, NewMessage, enqueue_many, record_outcomes
from core.settings import Settings
from core.signals import queue_signal, queue_signals
from core.ui import PARIS
from services.notices.models import (
    Client,
    Contract,
    LegalEntity,
    Notice,
    NoticeDocument,
    NoticeSend,
    Receipt,
    RobotSettings,
)
from services.notices.service import mailtemplate
from services.notices.service.documents import fetch_by_key, fetch_documents
from services.notices.service.fields import EMAIL
from services.notices.service.starts import robot_start, robot_workflow_id
from workflows.data.notices import FAILED, ROBOT_CONTROL, SEND_OUTCOME, SENT, RobotConfig, RobotControl, SendOutcome

STATE_LABELS = {"running": "En marche", "paused": "En pause", "error_wait": "Attente après erreur",
                "idle": "En attente (file vide)"}
LIMITS = {"pause_ms": (0, 600_000), "idle_ms": (1_000, 3_600_000), "error_wait_ms": (1_000, 3_600_000),
          "max_attempts": (1, 20), "alert_days": (0, 90)}


def robot_settings(session: Session, organisation_id: int, *, lock: bool = False) -> RobotSettings:
    """The organisation's settings, created with the seed's defaults on first use."""
    found = session.get(RobotSettings, organisation_id, with_for_update=lock)
    if found is None:
        session.execute(insert(RobotSettings).values(organisation_id=organisation_id).on_conflict_do_nothing())
        found = session.get(RobotSettings, organisation_id, with_for_update=lock, populate_existing=True)
    assert found is not None
    return found


def config(session: Session, organisation_id: int) -> RobotConfig:
    robot = robot_settings(session, organisation_id)
    if robot.paused and robot.state != "paused":
        set_state(session, organisation_id, "paused")
    return RobotConfig(robot.paused, robot.idle_ms, robot.error_wait_ms, robot.pause_ms)


def set_state(session: Session, organisation_id: int, state: str, error: str | None = None) -> None:
    values: dict[str, object] = {"state": state, "state_since": utcnow()}
    if error is not None:
        values.update(last_error=error[:2000], last_error_at=utcnow())
    session.execute(update(RobotSettings).where(RobotSettings.organisation_id == organisation_id).values(**values))


def wake_robot(session: Session, settings: Settings, organisation: Organisation, command: str = "wake") -> None:
    """Tell the organisation's robot (starting it if it does not run yet): there is work, or pause / resume. A wake
    already waiting for delivery is enough (a «Valider» of 500 notices makes one, not 500): the robot reads its
    settings and the queue when woken, whatever woke it."""
    queue_signal(session, organisation_id=organisation.id, workflow_id=robot_workflow_id(organisation),
                 signal=ROBOT_CONTROL, payload=RobotControl(command), task_queue=settings.task_queue,
                 start=robot_start(organisation, settings=settings), coalesce=command == "wake")


def organisation_of(session: Session, organisation_id: int) -> Organisation:
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    return organisation


def set_paused(session: Session, settings: Settings, *, user: User, paused: bool) -> None:
    """«Suspendre» / «Reprendre»: recorded, then the robot is told."""
    robot = robot_settings(session, user.organisation_id, lock=True)
    robot.paused = paused
    organisation = session.get(Organisation, user.organisation_id)
    assert organisation is not None
    wake_robot(session, settings, organisation, "pause" if paused else "resume")


# --- Settings form --------------------------------------------------------------------------------------------------

def own_domains(session: Session, organisation_id: int) -> set[str]:
    """The organisation's own mail domains: those of its users' and its legal entities' addresses."""
    addresses = [*session.scalars(select(User.email).where(User.organisation_id == organisation_id)),
                 *session.scalars(select(LegalEntity.email).where(LegalEntity.organisation_id == organisation_id))]
    return {a.rsplit("@", 1)[1].lower() for a in addresses if a and "@" in a}


@dataclass
class CheckedSettings:
    values: dict[str, object]
    errors: dict[str, str]


def check_settings(session: Session, organisation_id: int, raw: dict[str, str]) -> CheckedSettings:
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name, (low, high) in LIMITS.items():
        value = raw.get(name, "").strip().replace(" ", "")
        if not value.isdigit() or not low <= int(value) <= high:
            errors[name] = f"Un nombre entier entre {low} et {high} est attendu (reçu « {raw.get(name, '')} »)."
        else:
            values[name] = int(value)
    name = raw.get("sender_name", "").strip()
    if not name or len(name) > 200 or "\n" in name or "\r" in name:
        errors["sender_name"] = "Nom de l'expéditeur obligatoire (200 caractères au plus)."
    values["sender_name"] = name
    for field in ("from_address", "reply_to"):
        value = raw.get(field, "").strip()
        if value and not EMAIL.fullmatch(value):
            errors[field] = f"Adresse e-mail invalide « {value} »."
        values[field] = value or None
    domains = own_domains(session, organisation_id)
    bcc = [a for a in re.split(r"[\s,;]+", raw.get("bcc", "")) if a]
    for address in bcc:
        if not EMAIL.fullmatch(address):
            errors["bcc"] = f"Adresse e-mail invalide « {address} »."
            break
        if address.rsplit("@", 1)[1].lower() not in domains:
            errors["bcc"] = (f"« {address} » n'est pas une adresse de votre cabinet : la copie cachée n'accepte que "
                             f"les domaines {', '.join(sorted(domains)) or '(aucun)'}.")
            break
    values["bcc"] = list(dict.fromkeys(bcc))
    return CheckedSettings(values, errors)


# --- Sends ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedSend:
    send_id: int
    notice_id: int
    outbox_id: int
    tries: int
    attachments: list[Attachment] | None = None  # the PDF as just read and checked (None: load it by its key)


CORRUPTED = "PDF altéré depuis son édition (empreinte SHA-256 différente) : avis non envoyé"

_CLAIM = text("""
UPDATE notices.notices SET claimed_at = now()
 WHERE id IN (SELECT id FROM notices.notices
               WHERE organisation_id = :org AND status = 'V' AND claimed_at IS NULL AND pending_action IS NULL
                 AND NOT closed
               ORDER BY validated_at, id LIMIT :count FOR UPDATE SKIP LOCKED)
RETURNING id""")


def claim_sends(session: Session, settings: Settings, organisation_id: int, count: int = 1,
                busy: Collection[int] = ()) -> list[PreparedSend]:
    """The next sends to make, at most `count`, in the order they are to go: those left unfinished (an error to
    retry, a crash) first, else the next validated notices, claimed and each given its send and its outbox row.
    `busy`: the sends the caller already holds (claimed ahead of them, never the same one twice)."""
    stmt = (select(NoticeSend).join(Notice, Notice.id == NoticeSend.notice_id)
            .where(Notice.organisation_id == organisation_id, NoticeSend.status == "sending"))
    if busy:
        stmt = stmt.where(NoticeSend.id.not_in(list(busy)))
    unfinished = session.scalars(stmt.order_by(NoticeSend.id).limit(count)
                                 .with_for_update(of=NoticeSend, skip_locked=True)).all()
    if unfinished:
        return [PreparedSend(s.id, s.notice_id, s.outbox_id, s.tries) for s in unfinished if s.outbox_id is not None]
    ids = list(session.scalars(_CLAIM, {"org": organisation_id, "count": count}))
    if not ids:
        return []
    robot = robot_settings(session, organisation_id)
    rows = session.execute(
        select(Notice, Client, Receipt, Contract, LegalEntity).join(Client, Client.id == Notice.client_id)
        .join(Receipt, Receipt.id == Notice.receipt_id).join(Contract, Contract.id == Receipt.contract_id)
        .join(LegalEntity, LegalEntity.id == Notice.legal_entity_id)
        .where(Notice.id.in_(ids)).order_by(Notice.validated_at, Notice.id)).all()
    documents = fetch_documents(session, organisation_id=organisation_id,
                                document_ids=[r.Notice.document_id for r in rows])
    last_attempts = dict(session.execute(select(NoticeSend.notice_id, func.max(NoticeSend.attempt))
                                         .where(NoticeSend.notice_id.in_(ids)).group_by(NoticeSend.notice_id)).all())
    sends, messages, refused = [], [], []
    for notice, client, receipt, contract, entity in rows:
        document = documents.get(notice.document_id)
        attempt = (last_attempts.get(notice.id) or 0) + 1
        email = (client.email or notice.email).strip()  # the client's address as it is now (a corrected one counts)
        send = NoticeSend(notice_id=notice.id, attempt=attempt, email=email, status="sending", started_at=utcnow())
        if not isinstance(document, NoticeDocument):  # never sent as it is: this notice is KO, the others go on
            send.status, send.finished_at, send.reply = "KO", utcnow(), CORRUPTED
            refused.append((notice, send))
            continue
        sends.append((notice, document, send))
        fields = mailtemplate.values(notice=notice, client=client, contract=contract, receipt=receipt, entity=entity)
        messages.append(build_message(robot, fields, key=f"avis-{notice.id}-envoi-{attempt}", to=email,
                                      settings=settings, document_key=document.storage_key,
                                      filename=document.filename))
    outbox_ids = enqueue_many(session, settings=settings, organisation_id=organisation_id, messages=messages)
    for (_notice, _document, send), message in zip(sends, messages, strict=True):
        send.outbox_id = outbox_ids[message.key]
    session.add_all([send for *_, send in sends] + [send for _, send in refused])
    session.flush()
    queue_signals(session, organisation_id=organisation_id, signal=SEND_OUTCOME, task_queue=settings.task_queue,
                  payloads=[(n.workflow_id, SendOutcome(s.id, FAILED, CORRUPTED)) for n, s in refused])
    return [PreparedSend(send.id, notice.id, outbox_ids[message.key], 0,
                         [Attachment(document.filename, document.content_type, document.content)])
            for (notice, document, send), message in zip(sends, messages, strict=True)]


def release_sends(session: Session, organisation_id: int, send_ids: Collection[int]) -> int:
    """Give back sends claimed and never tried (no SMTP transaction began): their outbox rows and the sends are
    deleted and their notices are free again (blockable, claimed afresh later). Returns how many."""
    released = session.execute(
        select(NoticeSend.id, NoticeSend.notice_id, NoticeSend.outbox_id)
        .join(Notice, Notice.id == NoticeSend.notice_id)
        .where(NoticeSend.id.in_(list(send_ids)), NoticeSend.status == "sending", NoticeSend.tries == 0,
               Notice.organisation_id == organisation_id)
        .with_for_update(of=NoticeSend)).all()
    if not released:
        return 0
    session.execute(delete(NoticeSend).where(NoticeSend.id.in_([r.id for r in released])))
    session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_([r.outbox_id for r in released]),
                                                OutboxMessage.status == "pending"))
    session.execute(update(Notice).where(Notice.id.in_([r.notice_id for r in released])).values(claimed_at=None))
    return len(released)


def next_send(session: Session, settings: Settings, organisation_id: int,
              busy: Collection[int] = ()) -> PreparedSend | None:
    """The one send to make now (see `claim_sends`)."""
    claimed = claim_sends(session, settings, organisation_id, 1, busy)
    return claimed[0] if claimed else None


def build_message(robot: RobotSettings, fields: dict[str, str], *, key: str, to: str, settings: Settings,
                  document_key: str, filename: str) -> NewMessage:
    subject = mailtemplate.subject_line(robot.subject, fields)
    html = wrap_mail_html(mailtemplate.merge(robot.html_body, fields, escape=True), title=subject,
                          footer=f"Envoyé par {robot.sender_name} pour {fields['Entite_Nom']}.")
    address = robot.from_address or _address_of(settings.mail_from)
    return NewMessage(key=key, to=[to], subject=subject, text=mailtemplate.merge(robot.text_body, fields),
                      html=html, bcc=list(robot.bcc or []), sender=f"{robot.sender_name} <{address}>",
                      reply_to=robot.reply_to,
                      attachments=[{"filename": filename, "content_type": "application/pdf",
                                    "storage_key": document_key}])


def _address_of(value: str) -> str:
    return value[value.index("<") + 1:value.rindex(">")] if "<" in value else value


def load_attachments(session: Session, row: OutboxMessage) -> list[Attachment]:
    """The PDFs an outbox row of the robot names (checked against their SHA-256)."""
    out = []
    for item in row.attachments or []:
        document = fetch_by_key(session, organisation_id=row.organisation_id, key=item["storage_key"])
        if document is None:
            raise LookupError(f"pièce jointe introuvable : {item['storage_key']}")
        out.append(Attachment(item["filename"], item["content_type"], document.content))
    return out


@dataclass(frozen=True)
class SendReply:
    """The server's answer to one try of a send: OK or KO ends it; None is a try that failed for now."""

    send_id: int
    status: str | None
    reply: str
    at: datetime  # when the reply came: the send's «Dte. Envoi»


# The group in three statements. A send recorded before (a retried activity) is not "sending" any more: the UPDATE
# leaves it, its outbox row and its workflow alone.
_RECORD_SENDS = text("""
    UPDATE notices.notice_sends s
       SET tries = s.tries + 1, reply = g.reply, status = coalesce(g.status, s.status),
           finished_at = CASE WHEN g.status IS NULL THEN NULL ELSE g.at END
      FROM jsonb_to_recordset(CAST(:group AS jsonb)) AS g(id bigint, status text, reply text, at timestamptz),
           notices.notices n
     WHERE s.id = g.id AND s.status = 'sending' AND n.id = s.notice_id
 RETURNING s.id, s.outbox_id, g.status, g.reply, g.at, n.workflow_id""")
def record_replies(session: Session, settings: Settings, organisation_id: int, replies: Sequence[SendReply]) -> None:
    """The replies of a group of tries of the organisation's sends, in one transaction: each send and its outbox
    row get the reply, and each send that ended tells its notice's workflow."""
    group = [{"id": r.send_id, "status": r.status, "reply": r.reply[:2000], "at": r.at.isoformat()} for r in replies]
    recorded = session.execute(_RECORD_SENDS, {"group": json.dumps(group)}).all()
    if not recorded:
        return
    record_outcomes(session, [
        {"id": r.outbox_id, "status": {SENT: "sent", FAILED: "ko", None: "pending"}[r.status], "reply": r.reply,
         "sent_at": r.at.isoformat() if r.status == SENT else None} for r in recorded])
    queue_signals(session, organisation_id=organisation_id, signal=SEND_OUTCOME, task_queue=settings.task_queue,
                  payloads=[(r.workflow_id, SendOutcome(r.id, r.status, r.reply)) for r in recorded if r.status])
    sent = sum(r.status == SENT for r in recorded)
    if sent:
        today = utcnow().astimezone(PARIS).date()
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == organisation_id).values(
            sent_today=case((RobotSettings.sent_day == today, RobotSettings.sent_today + sent), else_=sent),
            sent_day=today))


def record_try(session: Session, settings: Settings, organisation_id: int, send_id: int, *, reply: str,
               max_attempts: int) -> bool:
    """A try that failed for now (4xx, connection): counted; the last allowed one makes the send KO. True: the
    robot tries again after its wait."""
    send = session.get(NoticeSend, send_id, with_for_update=True)
    assert send is not None
    last = send.tries + 1 >= max_attempts
    reply = f"{reply} (échec après {send.tries + 1} tentative(s))" if last else reply
    record_replies(session, settings, organisation_id, [SendReply(send_id, FAILED if last else None, reply, utcnow())])
    return not last
