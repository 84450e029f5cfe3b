"""Step 1, «Avis d'échéances» with «Mail»: the criteria, the selection of receipts, the run and its answer.

The form is checked field by field (French messages, nothing written on error). «Mail» selects the receipts in one
query and writes, in one transaction, the run, one item per receipt (a notice to make, numbered now from the
entity's counter, or a client left out and why) and the start of the run's workflow, which renders the PDFs. The
answer to «Marquer les avis comme édités ?» is recorded on the run and handed to the workflow the same way; «Oui»
is carried out by `confirm_run` (the workflow's activity), «Non» by `discard_run`. Numbers taken by a run that
ends without «Oui» are not reused. A «Mail» that finds no notice to make ends the run there («Aucun avis à éditer»):
no workflow, no question; its left-out list stays on its page.

What each criterion selects (a receipt it rules out is simply not selected, like the periods):
- «Quittances» Terme / Comptant choose the receipts of nature «Quittance»; «Acomptes» add the deposits of the
  natures ticked («Acomptes affectés», «Acomptes libres», «Appel d'acomptes»).
- «Acomptes affectés des contrats sans quittance en arriéré»: an «Acompte affecté» only when no «Quittance» of its
  contract, due (date d'effet) before it, still has a «Reste dû».
- «Pollicitation»: proposals («Pollicitation» on the receipt) only with this option, never for a client
  «Sans Pollicitation».
- «Sans édition des avances Cabinet»: the receipts marked «Avance cabinet» left out.
"""

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from core.db import get_scoped, scoped, utcnow
from core.models import Organisation, User
from core.settings import Settings
from core.signals import queue_signal, queue_start
from core.ui import PARIS
from services.notices.models import (
    COLLECTIONS,
    RECEIPT_TYPES,
    STATUS_LETTERS,
    Client,
    Contract,
    LegalEntity,
    Notice,
    NoticeEvent,
    NoticeRun,
    NoticeText,
    Receipt,
    RobotSettings,
    RunItem,
)
from services.notices.service.documents import store_notice_pdf
from services.notices.service.notice_pdf import build_content, notice_html
from services.notices.service.robot import wake_robot
from services.notices.service.starts import (
    notice_start,
    notice_workflow_id,
    run_start,
    run_workflow_id,
)
from workflows.data.notices import RUN_ANSWER, VALIDATED, WAITING, RunAnswer

DEPOSITS = {"affectes": "Acomptes affectés", "libres": "Acomptes libres", "appel": "Appel d'acomptes"}
DEPOSIT_KINDS = {"affectes": "acompte_affecte", "libres": "acompte_libre", "appel": "appel_acomptes"}  # → Receipt.kind
EDITION_OPTIONS = {
    "non_positive": "Documents dont le total est négatif ou nul",
    "deposits_no_arrears": "Acomptes affectés des contrats sans quittance en arriéré",
    "pollicitation": "Pollicitation",
    "no_broker_advances": "Sans édition des avances Cabinet",
}
NO_EMAIL = "Pas d'adresse e-mail"
NOT_BY_EMAIL = "« AE par mail » non coché"
NON_POSITIVE = "Total nul ou négatif"
LIVE_NOTICE = "Un avis d'échéance est déjà en cours pour cette quittance"
STATUS_LABELS = {"preparing": "En préparation", "rendering": "Génération des PDF", "awaiting_answer":
                 "En attente de votre réponse", "confirmed": "Avis marqués comme édités", "declined":
                 "Non marqués (aucun avis gardé)", "expired": "Sans réponse (aucun avis gardé)",
                 "failed": "En erreur", "empty": "Aucun avis à éditer"}
OPEN = ("preparing", "rendering", "awaiting_answer")
DEFAULT_ALERT_DAYS = 7  # RobotSettings.alert_days before the administrator saves the settings


class RunRefused(Exception):
    """The run cannot do what was asked (already answered, not yours…): the message says why, in French."""


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _next_month_end(day: date) -> date:
    first_next = _month_end(day).toordinal() + 1
    return _month_end(date.fromordinal(first_next))


def defaults(today: date) -> dict[str, Any]:
    """The form as the seed opens it, except that «Période de débit» and «Période d'effet» run to the end of NEXT
    month: notices go out ahead of their due date, and a receipt's debit month is its effect month unless the
    accounting system says otherwise (the seed's screenshot, taken on the 23rd, stops at the current month)."""
    next_month = _next_month_end(today)
    return {"dossier_from": "", "dossier_to": "", "contract_from": "", "contract_to": "",
            "collection": list(COLLECTIONS), "receipt_types": list(RECEIPT_TYPES), "deposits": [],
            "debit_from": "01/1900", "debit_to": next_month.strftime("%m/%Y"),
            "entry_from": "01/01/1900", "entry_to": today.strftime("%d/%m/%Y"),
            "effect_from": "01/01/1900", "effect_to": next_month.strftime("%d/%m/%Y"),
            "options": [], "cdp": "", "fixed_fee": "0,00", "entity_id": "", "text_id": ""}


@dataclass
class Criteria:
    entity_id: int
    text_id: int | None
    dossier_from: str
    dossier_to: str
    contract_from: str
    contract_to: str
    collection: list[str]
    receipt_types: list[str]
    deposits: list[str]
    debit_from: date
    debit_to: date
    entry_from: date
    entry_to: date
    effect_from: date
    effect_to: date
    options: list[str]
    cdp: str
    fixed_fee: Decimal

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, date) else str(value) if isinstance(
                value, Decimal) else value
        return out


@dataclass
class CheckedForm:
    criteria: Criteria | None
    errors: dict[str, str] = field(default_factory=dict)


def _day(raw: str) -> date | None:
    raw = raw.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


def _month(raw: str) -> date | None:
    parts = raw.strip().split("/")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and 1 <= int(parts[0]) <= 12 and len(parts[1]) == 4:
        return date(int(parts[1]), int(parts[0]), 1)
    return None


def check_form(session: Session, organisation_id: int, raw: Mapping[str, Any]) -> CheckedForm:
    """Every field checked; all the problems at once (field → French message)."""
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        value = raw.get(name) or ""
        return str(value).strip()

    def choices(name: str, allowed: Mapping[str, str]) -> list[str]:
        value = raw.get(name) or []
        values = [str(v) for v in (value if isinstance(value, list) else [value])]
        if bad := [v for v in values if v not in allowed]:
            errors[name] = f"Valeur inconnue : {', '.join(bad)}."
        return [v for v in allowed if v in values]

    entity = None
    entity_raw = text("entity_id")
    if not entity_raw.isdigit() or len(entity_raw) > 18:
        errors["entity_id"] = "Choisissez l'entité juridique."
    else:
        entity = get_scoped(session, LegalEntity, int(entity_raw), organisation_id)
        if entity is None:
            errors["entity_id"] = "Cette entité juridique n'existe pas."
    text_id: int | None = None
    text_raw = text("text_id")
    if text_raw:
        found = get_scoped(session, NoticeText, int(text_raw), organisation_id) if text_raw.isdigit() and len(
            text_raw) < 19 else None
        if found is None or found.archived:
            errors["text_id"] = "Ce texte n'existe pas (ou est archivé)."
        else:
            text_id = found.id
    collection = choices("collection", COLLECTIONS)
    if not collection and "collection" not in errors:
        errors["collection"] = "Cochez au moins un mode d'encaissement (Confié, Direct)."
    receipt_types = choices("receipt_types", RECEIPT_TYPES)
    deposits = choices("deposits", DEPOSITS)
    if not receipt_types and not deposits and not {"receipt_types", "deposits"} & set(errors):
        errors["receipt_types"] = "Cochez au moins un type de quittance (Terme, Comptant) ou d'acompte."
    options = choices("options", EDITION_OPTIONS)
    periods: dict[str, date] = {}
    for name, parse, shape in (("debit_from", _month, "MM/AAAA"), ("debit_to", _month, "MM/AAAA"),
                               ("entry_from", _day, "JJ/MM/AAAA"), ("entry_to", _day, "JJ/MM/AAAA"),
                               ("effect_from", _day, "JJ/MM/AAAA"), ("effect_to", _day, "JJ/MM/AAAA")):
        value = parse(text(name))
        if value is None:
            errors[name] = f"Date invalide « {text(name)} » : attendu {shape}."
        else:
            periods[name] = value
    for start, end, label in (("debit_from", "debit_to", "Période de débit"),
                              ("entry_from", "entry_to", "Période de saisie"),
                              ("effect_from", "effect_to", "Période d'effet")):
        if start in periods and end in periods and periods[start] > periods[end]:
            errors[end] = f"{label} : la date de fin précède la date de début."
    for start, end, label in (("dossier_from", "dossier_to", "N° de dossier"),
                              ("contract_from", "contract_to", "N° de contrat")):
        if text(start) and text(end) and text(start) > text(end):
            errors[end] = f"{label} : la fin de la plage précède son début."
        for name in (start, end):
            if len(text(name)) > 40:
                errors[name] = f"{label} : 40 caractères au plus."
    cdp = text("cdp").upper().replace(" ", "").replace("/", "").replace(",", "")
    if any(letter not in STATUS_LETTERS for letter in cdp):
        errors["cdp"] = "Filtre d'impression : lettres C, D ou P seulement (vide pour tout imprimer)."
    fee = Decimal("0")
    try:
        fee = Decimal(text("fixed_fee").replace(",", ".").replace(" ", "") or "0")
        if not fee.is_finite() or fee < 0 or fee > 10_000:
            raise InvalidOperation
        fee = fee.quantize(Decimal("0.01"))
    except InvalidOperation:
        errors["fixed_fee"] = f"Montant des frais fixes invalide « {text('fixed_fee')} » : un montant en euros " \
                              "entre 0 et 10 000 (ex. 2,50)."
    if errors or entity is None:
        return CheckedForm(None, errors)
    return CheckedForm(Criteria(
        entity.id, text_id, text("dossier_from"), text("dossier_to"), text("contract_from"), text("contract_to"),
        collection, receipt_types, deposits, periods["debit_from"], periods["debit_to"], periods["entry_from"],
        periods["entry_to"], periods["effect_from"], periods["effect_to"], options, "".join(dict.fromkeys(cdp)),
        fee))


@dataclass(frozen=True)
class Candidate:
    receipt_id: int
    client_id: int
    excluded_reason: str | None


def select_receipts(session: Session, organisation_id: int, criteria: Criteria) -> list[Candidate]:
    """The receipts the criteria select, in dossier then receipt order, each with why it is left out (or None)."""
    live = exists().where(Notice.receipt_id == Receipt.id, Notice.status != "A")
    kinds = or_(and_(Receipt.kind == "quittance", Receipt.receipt_type.in_(criteria.receipt_types)),
                Receipt.kind.in_([DEPOSIT_KINDS[d] for d in criteria.deposits]))
    stmt = (select(Receipt.id, Client.id, Client.email, Client.notice_by_email, Receipt.total_ttc, live)
            .join(Contract, Contract.id == Receipt.contract_id).join(Client, Client.id == Contract.client_id)
            .where(Receipt.organisation_id == organisation_id, Contract.legal_entity_id == criteria.entity_id,
                   Receipt.collection.in_(criteria.collection), kinds,
                   Receipt.debit_month.between(criteria.debit_from, criteria.debit_to),
                   Receipt.entry_date.between(criteria.entry_from, criteria.entry_to),
                   Receipt.effect_date.between(criteria.effect_from, criteria.effect_to))
            .order_by(Client.number, Receipt.number))
    for column, low, high in ((Client.number, criteria.dossier_from, criteria.dossier_to),
                              (Contract.number, criteria.contract_from, criteria.contract_to)):
        if low:
            stmt = stmt.where(column >= low)
        if high:
            stmt = stmt.where(column <= high)
    if criteria.cdp:
        stmt = stmt.where(Client.status.in_(list(criteria.cdp)))
    if "deposits_no_arrears" in criteria.options:
        earlier = aliased(Receipt)
        arrears = exists().where(earlier.contract_id == Receipt.contract_id, earlier.kind == "quittance",
                                 earlier.effect_date < Receipt.effect_date, earlier.outstanding > 0)
        stmt = stmt.where(or_(Receipt.kind != "acompte_affecte", ~arrears))
    if "pollicitation" in criteria.options:
        stmt = stmt.where(or_(Receipt.is_proposal.is_(False), Client.no_solicitation.is_(False)))
    else:
        stmt = stmt.where(Receipt.is_proposal.is_(False))
    if "no_broker_advances" in criteria.options:
        stmt = stmt.where(Receipt.broker_advance.is_(False))
    out = []
    for receipt_id, client_id, email, by_email, total, has_live in session.execute(stmt):
        reason = None
        if has_live:
            reason = LIVE_NOTICE
        elif not (email or "").strip():
            reason = NO_EMAIL
        elif not by_email:
            reason = NOT_BY_EMAIL
        elif total + criteria.fixed_fee <= 0 and "non_positive" not in criteria.options:
            reason = NON_POSITIVE
        out.append(Candidate(receipt_id, client_id, reason))
    return out


def start_run(session: Session, settings: Settings, *, user: User, criteria: Criteria,
              workstation: str | None) -> NoticeRun:
    """«Mail»: the run, its items (notices numbered now), and its workflow's start, in the caller's transaction
    (none when there is no notice to make: the run is then «Aucun avis à éditer» at once)."""
    organisation = session.get(Organisation, user.organisation_id)
    entity = session.get(LegalEntity, criteria.entity_id)
    assert organisation is not None and entity is not None and entity.organisation_id == user.organisation_id
    letter = session.get(NoticeText, criteria.text_id) if criteria.text_id else None
    candidates = select_receipts(session, user.organisation_id, criteria)
    to_make = [c for c in candidates if c.excluded_reason is None]
    run = NoticeRun(organisation_id=user.organisation_id, legal_entity_id=entity.id, criteria=criteria.as_json(),
                    text_id=letter.id if letter else None, letter_text=letter.body if letter else "",
                    fixed_fee=criteria.fixed_fee, status="preparing" if to_make else "empty", planned=len(to_make),
                    excluded=len(candidates) - len(to_make), created_by_id=user.id,
                    created_by_name=user.full_name or user.email, workstation=(workstation or "")[:200] or None)
    session.add(run)
    session.flush()
    # The numbers in one statement under the row's lock: never the counter as this session once read it (another
    # run may have taken numbers since), never reused.
    first = session.scalar(update(LegalEntity).where(LegalEntity.id == entity.id)
                           .values(next_notice_no=LegalEntity.next_notice_no + len(to_make))
                           .returning(LegalEntity.next_notice_no - len(to_make)))
    assert first is not None
    numbers = iter(range(first, first + len(to_make)))
    if candidates:
        session.execute(insert(RunItem), [
            {"run_id": run.id, "receipt_id": c.receipt_id, "client_id": c.client_id,
             "excluded_reason": c.excluded_reason, "notice_number": None if c.excluded_reason else next(numbers)}
            for c in candidates])
    if to_make:  # nothing to make: no PDF to render, no «Marquer les avis comme édités ?» to ask
        queue_start(session, organisation_id=user.organisation_id,
                    spec=run_start(run, organisation=organisation, entity=entity, settings=settings))
    return run


def get_run(session: Session, organisation_id: int, run_id: int) -> NoticeRun | None:
    return get_scoped(session, NoticeRun, run_id, organisation_id)


def list_runs(session: Session, organisation_id: int, limit: int = 20) -> list[NoticeRun]:
    return list(session.scalars(scoped(NoticeRun, organisation_id).order_by(NoticeRun.id.desc()).limit(limit)))


@dataclass(frozen=True)
class ItemRow:
    item: RunItem
    client: Client
    receipt: Receipt
    contract: Contract


def run_items(session: Session, run: NoticeRun, *, excluded: bool | None = None) -> list[ItemRow]:
    stmt = (select(RunItem, Client, Receipt, Contract).join(Client, Client.id == RunItem.client_id)
            .join(Receipt, Receipt.id == RunItem.receipt_id).join(Contract, Contract.id == Receipt.contract_id)
            .where(RunItem.run_id == run.id).order_by(RunItem.id))
    if excluded is not None:
        stmt = stmt.where(RunItem.excluded_reason.is_not(None) if excluded else RunItem.excluded_reason.is_(None))
    return [ItemRow(*row) for row in session.execute(stmt)]


def answer_run(session: Session, settings: Settings, *, user: User, run: NoticeRun, confirmed: bool) -> None:
    """«Oui» / «Non» to «Marquer les avis comme édités ?»: recorded on the run, handed to its workflow."""
    locked = session.get(NoticeRun, run.id, with_for_update=True)
    assert locked is not None
    if locked.status != "awaiting_answer" or locked.answered_at is not None:
        raise RunRefused("Cette édition a déjà reçu sa réponse ou n'attend plus de réponse "
                         f"(état : {STATUS_LABELS[locked.status]}).")
    locked.answered_by_name = user.full_name or user.email
    locked.answered_at = utcnow()
    organisation = session.get(Organisation, locked.organisation_id)
    assert organisation is not None
    queue_signal(session, organisation_id=locked.organisation_id,
                 workflow_id=run_workflow_id(organisation, locked.id), signal=RUN_ANSWER,
                 payload=RunAnswer(confirmed), task_queue=settings.task_queue)


# --- What the run's workflow does (called by activities/notices_run.py) -------------------------------------------

def page_htmls(session: Session, run_id: int, page: int, page_size: int) -> list[tuple[int, str]]:
    """The HTML of the notices of one page of the run: [(item id, html)]."""
    run = session.get(NoticeRun, run_id)
    assert run is not None
    entity = session.get(LegalEntity, run.legal_entity_id)
    assert entity is not None
    stmt = (select(RunItem, Client, Receipt, Contract).join(Client, Client.id == RunItem.client_id)
            .join(Receipt, Receipt.id == RunItem.receipt_id).join(Contract, Contract.id == Receipt.contract_id)
            .where(RunItem.run_id == run_id, RunItem.excluded_reason.is_(None)).order_by(RunItem.id)
            .offset(page * page_size).limit(page_size))
    letter_date = run.created_at.astimezone(PARIS).date()
    out = []
    for item, client, receipt, contract in session.execute(stmt):
        content = build_content(entity=entity, client=client, contract=contract, receipt=receipt,
                                number=item.notice_number, letter_date=letter_date, fixed_fees=run.fixed_fee,
                                letter_text=run.letter_text)
        out.append((item.id, notice_html(content)))
    return out


def store_page(session: Session, run_id: int, pdfs: Mapping[int, bytes]) -> None:
    for item_id, pdf in pdfs.items():
        session.execute(update(RunItem).where(RunItem.id == item_id, RunItem.run_id == run_id).values(pdf=pdf))
    rendered = session.scalar(select(func.count()).where(RunItem.run_id == run_id, RunItem.pdf.is_not(None)))
    session.execute(update(NoticeRun).where(NoticeRun.id == run_id).values(rendered=rendered or 0))


def set_status(session: Session, run_id: int, status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["error"] = error[:2000]
    session.execute(update(NoticeRun).where(NoticeRun.id == run_id, NoticeRun.status.in_(OPEN)).values(**values))


def confirm_run(session: Session, settings: Settings, run_id: int) -> int:
    """«Oui»: the PDFs kept for good, the notices queued (E, or V when the entity validates automatically), the
    receipts stamped, each notice's workflow started, the robot woken. Idempotent (a retried activity finds the
    run confirmed and does nothing). Returns the number of notices created."""
    run = session.get(NoticeRun, run_id, with_for_update=True)
    assert run is not None
    if run.status == "confirmed":
        return session.scalar(select(func.count()).where(Notice.run_id == run_id)) or 0
    organisation = session.get(Organisation, run.organisation_id)
    entity = session.get(LegalEntity, run.legal_entity_id)
    assert organisation is not None and entity is not None
    status = WAITING if entity.manual_confirmation else VALIDATED
    now = utcnow()
    created = 0
    for row in run_items(session, run, excluded=False):
        item, client, receipt = row.item, row.client, row.receipt
        if item.pdf is None or item.notice_number is None:
            continue
        live = session.scalar(select(Notice.number).where(Notice.receipt_id == receipt.id, Notice.status != "A")
                              .with_for_update())
        if live is not None:  # another run's notice for this receipt was confirmed meanwhile
            item.excluded_reason = f"{LIVE_NOTICE} (n°{live})"
            item.pdf = None
            continue
        stored = store_notice_pdf(session, organisation_id=run.organisation_id, legal_entity_id=entity.id,
                                  notice_number=item.notice_number, pdf=item.pdf, client_id=client.id,
                                  receipt_id=receipt.id)
        notice = Notice(organisation_id=run.organisation_id, run_id=run.id, receipt_id=receipt.id,
                        client_id=client.id, legal_entity_id=entity.id, document_id=stored.document.id,
                        number=item.notice_number, status=status, email=(client.email or "").strip(),
                        due_date=receipt.effect_date, created_at=now, created_by_id=run.created_by_id,
                        created_by_name=run.created_by_name, workstation=run.workstation,
                        validated_at=now if status == VALIDATED else None,
                        workflow_id=notice_workflow_id(organisation, entity, item.notice_number))
        session.add(notice)
        session.flush()
        session.add(NoticeEvent(notice_id=notice.id, at=now, actor_name=run.answered_by_name or run.created_by_name,
                                action="created", to_status=status,
                                detail="Validé automatiquement (confirmation manuelle désactivée)"
                                if status == VALIDATED else None))
        receipt.edition_date = now.date()
        item.pdf = None  # kept in documents now
        alert_at = _alert_at(session, run.organisation_id, receipt.effect_date)
        queue_start(session, organisation_id=run.organisation_id,
                    spec=notice_start(notice, organisation=organisation, entity=entity, client=client,
                                      settings=settings, alert_at=alert_at,
                                      due_at=_paris_morning(receipt.effect_date)))
        created += 1
    run.status = "confirmed"
    if created and status == VALIDATED:
        wake_robot(session, settings, organisation)
    return created




def _paris_morning(day: date) -> datetime:
    """8 a.m. in Paris on `day`: when a notice falls due, and what its alert counts back from."""
    return datetime(day.year, day.month, day.day, 8, tzinfo=PARIS)


def _alert_at(session: Session, organisation_id: int, due: date) -> datetime | None:
    robot = session.get(RobotSettings, organisation_id)
    days = robot.alert_days if robot is not None else DEFAULT_ALERT_DAYS
    if not days:
        return None
    return _paris_morning(due) - timedelta(days=int(days))


def discard_run(session: Session, run_id: int, status: str, error: str | None = None) -> None:
    """«Non» (declined), no answer in time (expired) or PDFs that would not render (failed): nothing is kept;
    the numbers stay used."""
    session.execute(update(RunItem).where(RunItem.run_id == run_id).values(pdf=None))
    set_status(session, run_id, status, error)

