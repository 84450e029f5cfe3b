"""The «Automate d'envoi»: its settings, and the steps of one send, called by the robot's activity.

One notice at a time, in the order they were validated: `next_send` claims it (never one with a request pending:
a block recorded first always wins) and writes its send and its outbox row (the PDF named by its storage key, From,
Reply-To, Bcc from the settings) in one transaction; the activity sends it; `record_send` writes the reply on the
send and the outbox row and tells the notice's workflow, in one transaction. A crash between the SMTP reply and
that commit re-sends the one mail in flight, never more. The robot never writes a notice's status.
"""

import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import case, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import utcnow
from core.maillayout import wrap_mail_html
from core.models import Organisation, OutboxMessage, User
from core.outbox import Attachment, NewMessage, enqueue_many
from core.settings import Settings
from core.signals import queue_signal
from core.ui import PARIS
from services.notices.models import Client, Contract, LegalEntity, Notice, NoticeSend, Receipt, RobotSettings
from services.notices.service import mailtemplate
from services.notices.service.documents import fetch_by_key, fetch_document
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
    return RobotConfig(robot.paused, robot.idle_ms, robot.error_wait_ms)


def set_state(session: Session, organisation_id: int, state: str, error: str | None = None) -> None:
    values: dict[str, object] = {"state": state, "state_since": utcnow()}
    if error is not None:
        values.update(last_error=error[:2000], last_error_at=utcnow())
    session.execute(update(RobotSettings).where(RobotSettings.organisation_id == organisation_id).values(**values))


def wake_robot(session: Session, settings: Settings, organisation: Organisation, command: str = "wake") -> None:
    """Tell the organisation's robot (starting it if it does not run yet): there is work, or pause / resume."""
    queue_signal(session, organisation_id=organisation.id, workflow_id=robot_workflow_id(organisation),
                 signal=ROBOT_CONTROL, payload=RobotControl(command), task_queue=settings.task_queue,
                 start=robot_start(organisation, settings=settings))


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


# --- One send ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedSend:
    send_id: int
    notice_id: int
    outbox_id: int
    tries: int
    attachments: list[Attachment] | None = None  # the PDF as just read and checked (None: load it by its key)


_CLAIM = text("""
UPDATE notices.notices SET claimed_at = now()
 WHERE id = (SELECT id FROM notices.notices
              WHERE organisation_id = :org AND status = 'V' AND claimed_at IS NULL AND pending_action IS NULL
                AND NOT closed
              ORDER BY validated_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id""")


def next_send(session: Session, settings: Settings, organisation_id: int,
              busy: Collection[int] = ()) -> PreparedSend | None:
    """The send to make now: one left unfinished (an error to retry, a crash), else the next validated notice.
    `busy`: the sends the caller has on the wire (claimed ahead of them, never the same one twice)."""
    stmt = (select(NoticeSend, Notice).join(Notice, Notice.id == NoticeSend.notice_id)
            .where(Notice.organisation_id == organisation_id, NoticeSend.status == "sending"))
    if busy:
        stmt = stmt.where(NoticeSend.id.not_in(list(busy)))
    unfinished = session.execute(stmt.order_by(NoticeSend.id).limit(1)
                                 .with_for_update(of=NoticeSend, skip_locked=True)).first()
    if unfinished is not None:
        send, notice = unfinished
        assert send.outbox_id is not None
        return PreparedSend(send.id, notice.id, send.outbox_id, send.tries)
    notice_id = session.scalar(_CLAIM, {"org": organisation_id})
    if notice_id is None:
        return None
    claimed = session.get(Notice, notice_id)
    assert claimed is not None
    notice = claimed
    robot = robot_settings(session, organisation_id)
    client = session.get(Client, notice.client_id)
    receipt = session.get(Receipt, notice.receipt_id)
    assert client is not None and receipt is not None
    contract = session.get(Contract, receipt.contract_id)
    entity = session.get(LegalEntity, notice.legal_entity_id)
    document = fetch_document(session, organisation_id=organisation_id, document_id=notice.document_id)
    assert contract is not None and entity is not None and document is not None
    attempt = (session.scalar(select(NoticeSend.attempt).where(NoticeSend.notice_id == notice.id)
                              .order_by(NoticeSend.attempt.desc()).limit(1)) or 0) + 1
    email = (client.email or notice.email).strip()  # the client's address as it is now (a corrected one counts)
    send = NoticeSend(notice_id=notice.id, attempt=attempt, email=email, status="sending", started_at=utcnow())
    session.add(send)
    session.flush()
    fields = mailtemplate.values(notice=notice, client=client, contract=contract, receipt=receipt, entity=entity)
    message = build_message(robot, fields, key=f"avis-{notice.id}-envoi-{attempt}", to=email,
                            settings=settings, document_key=document.storage_key, filename=document.filename)
    send.outbox_id = enqueue_many(session, settings=settings, organisation_id=organisation_id,
                                  messages=[message])[message.key]
    return PreparedSend(send.id, notice.id, send.outbox_id, 0,
                        [Attachment(document.filename, document.content_type, document.content)])


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


def record_send(session: Session, settings: Settings, send_id: int, *, status: str | None, reply: str) -> None:
    """The reply of one try. `status` OK or KO ends the send and tells the notice's workflow; None is a try that
    failed for now (4xx, connection): counted, kept for the next try."""
    send = session.get(NoticeSend, send_id, with_for_update=True)
    assert send is not None
    if send.status != "sending":
        return  # recorded before (a retried activity)
    notice = session.get(Notice, send.notice_id)
    assert notice is not None and send.outbox_id is not None
    send.tries += 1
    send.reply = reply[:2000]
    now = utcnow()
    row_status = {SENT: "sent", FAILED: "ko", None: "pending"}[status]
    session.execute(update(OutboxMessage).where(OutboxMessage.id == send.outbox_id).values(
        status=row_status, attempts=OutboxMessage.attempts + 1, last_reply=reply[:2000],
        sent_at=now if status == SENT else None))
    if status is None:
        return
    send.status, send.finished_at = status, now
    queue_signal(session, organisation_id=notice.organisation_id, workflow_id=notice.workflow_id,
                 signal=SEND_OUTCOME, payload=SendOutcome(send.id, status, reply[:2000]),
                 task_queue=settings.task_queue)
    if status == SENT:
        today = now.astimezone(PARIS).date()
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == notice.organisation_id).values(
            sent_today=case((RobotSettings.sent_day == today, RobotSettings.sent_today + 1), else_=1),
            sent_day=today))


def record_try(session: Session, settings: Settings, send_id: int, *, reply: str, max_attempts: int) -> bool:
    """A try that failed for now (4xx, connection): counted; the last allowed one makes the send KO. True: the
    robot tries again after its wait."""
    send = session.get(NoticeSend, send_id, with_for_update=True)
    assert send is not None
    if send.tries + 1 >= max_attempts:
        record_send(session, settings, send_id, status=FAILED,
                    reply=f"{reply} (échec après {send.tries + 1} tentative(s))")
        return False
    record_send(session, settings, send_id, status=None, reply=reply)
    return True
