"""One «Avis d'échéance» as a PDF: what it says (`NoticeContent`, built from a receipt), its HTML, its rendering
through `core.pdf` (restricted URL fetcher, child process killed after its time limit).

The letter follows the seed's: the entity's letterhead, the recipient block, "<ville> le <date longue>", «Avis
d'échéance n°<n>», the contract's references, the salutation worked out from the client's «Titre», the period, the
amounts with their total and the fixed fees, and — for a contract renewed by tacit agreement, of a person — the
termination reminder of article L113-15-1 du Code des assurances (loi Chatel). A deposit («Acompte affecté»,
«Acompte libre», «Appel d'acomptes») or a proposal («Pollicitation») says what it is, and carries no reminder: it
is no renewal of the contract.
"""

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session

from core.db import get_scoped
from core.pdf import render_pdf
from services.notices.models import RECEIPT_KINDS, Client, Contract, LegalEntity, Receipt
from services.notices.service.entities import vat_label
from services.notices.service.fields import civility

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
LATE_DAYS = 15  # sent less than 15 days before the deadline (or after it): 20 days from the sending date
WINDOW_DAYS = 20
_ENV = Environment(loader=FileSystemLoader(str(Path(__file__).parent.parent / "templates" / "pdf")),
                   autoescape=True, undefined=StrictUndefined, auto_reload=False)


def long_date(value: date) -> str:
    """"20 avril 2009", "1er mai 2026"."""
    return f"{'1er' if value.day == 1 else value.day} {MONTHS[value.month - 1]} {value.year}"


def euros(value: Decimal) -> str:
    """"1 234,50 €" (narrow no-break spaces, as French typography has them)."""
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,.2f}".replace(",", "\u202f").replace(".", ",") + "\u00a0€"


_ENV.filters.update(d=lambda value: value.strftime("%d/%m/%Y"), euros=euros)


def months_before(value: date, months: int) -> date:
    """The same day `months` earlier (the month's last day when it has no such day)."""
    year, month = divmod(value.year * 12 + value.month - 1 - months, 12)
    return date(year, month + 1, min(value.day, calendar.monthrange(year, month + 1)[1]))


def termination_deadline(effect_date: date, notice_period_months: int) -> date:
    """The last day the subscriber may refuse the renewal: the period ends the day before the due date, and the
    notice period counts back from there (due 01/01, two months: 31/10)."""
    return months_before(effect_date - timedelta(days=1), notice_period_months)


def termination_reminder(*, effect_date: date, notice_period_months: int, letter_date: date) -> str:
    """The reminder article L113-15-1 du Code des assurances asks of the annual notice of a tacitly renewed
    contract: the deadline, or — when the notice leaves less than 15 days before it, or after it — the 20 days
    from the notice's sending date."""
    deadline = termination_deadline(effect_date, notice_period_months)
    if letter_date > deadline - timedelta(days=LATE_DAYS):
        return (f"Votre contrat se renouvelle par tacite reconduction. Le présent avis vous étant adressé moins de "
                f"quinze jours avant la date limite d'exercice de votre droit à dénonciation du contrat "
                f"({long_date(deadline)}), ou après cette date, vous disposez, conformément à l'article L113-15-1 "
                f"du Code des assurances, d'un délai de vingt jours suivant la date d'envoi du présent avis pour "
                f"dénoncer la reconduction de votre contrat, par lettre ou tout autre support durable (le cachet "
                f"de la poste ou la date d'envoi faisant foi).")
    return (f"Votre contrat se renouvelle par tacite reconduction. Conformément à l'article L113-15-1 du Code des "
            f"assurances, vous pouvez dénoncer sa reconduction jusqu'au {long_date(deadline)}, date limite "
            f"d'exercice de votre droit à dénonciation du contrat, par lettre ou tout autre support durable adressé "
            f"à notre cabinet ou à votre assureur (le cachet de la poste ou la date d'envoi faisant foi).")


@dataclass(frozen=True)
class NoticeContent:
    """Everything one notice says, in plain values: built from the database, rendered without it."""

    entity_name: str
    entity_lines: tuple[str, ...]
    entity_phone: str | None
    entity_fax: str | None
    entity_email: str | None
    vat: str
    recipient_lines: tuple[str, ...]
    letter_town: str
    letter_date: date
    number: int | None  # None: a preview, not numbered
    contract_number: str
    insurer: str
    category: str
    observations: str | None
    client_number: str
    salutation: str
    period_start: date
    period_end: date
    effect_date: date
    collection: str
    receipt_type: str
    premium_ht: Decimal
    taxes: Decimal
    fees: Decimal
    total_ttc: Decimal
    fixed_fees: Decimal
    reminder: str | None
    letter_text: str = ""  # the run's «Etat_text», after the standard paragraph
    kind: str = "quittance"  # Receipt.kind
    kind_label: str = "Quittance"
    is_proposal: bool = False  # «Pollicitation»

    @property
    def total(self) -> Decimal:
        return self.total_ttc + self.fixed_fees

    @property
    def letter_date_long(self) -> str:
        return long_date(self.letter_date)


def recipient_lines(client: Client) -> tuple[str, ...]:
    """"Dr Catherine BARBEREAU / 1 avenue des sables / 91350 CRIGNY"."""
    name = " ".join(p for p in (civility(client.title).title, client.first_name, client.last_name.upper()) if p)
    return tuple(p for p in (name, client.address1, client.address2, f"{client.postal_code} {client.town}") if p)


def build_content(*, entity: LegalEntity, client: Client, contract: Contract, receipt: Receipt, number: int | None,
                  letter_date: date, fixed_fees: Decimal = Decimal("0.00"), letter_text: str = "") -> NoticeContent:
    """What the notice of `receipt` says, dated `letter_date` ("<ville> le <date>")."""
    who = civility(client.title)
    reminder = None
    renewal = receipt.kind == "quittance" and receipt.receipt_type == "terme" and not receipt.is_proposal
    if renewal and contract.tacit_renewal and not who.legal_person:
        reminder = termination_reminder(effect_date=receipt.effect_date, letter_date=letter_date,
                                        notice_period_months=contract.notice_period_months)
    entity_lines = tuple(p for p in (entity.address1, entity.address2, f"{entity.postal_code} {entity.town}") if p)
    return NoticeContent(
        entity_name=entity.name, entity_lines=entity_lines, entity_phone=entity.phone, entity_fax=entity.fax,
        entity_email=entity.email, vat=vat_label(entity), recipient_lines=recipient_lines(client),
        letter_town=entity.letter_town, letter_date=letter_date, number=number, contract_number=contract.number,
        insurer=contract.insurer, category=contract.category, observations=contract.observations,
        client_number=client.number, salutation=who.salutation, period_start=receipt.period_start,
        period_end=receipt.period_end, effect_date=receipt.effect_date, collection=receipt.collection,
        receipt_type=receipt.receipt_type, premium_ht=receipt.premium_ht, taxes=receipt.taxes, fees=receipt.fees,
        total_ttc=receipt.total_ttc, fixed_fees=fixed_fees.quantize(Decimal("0.01")), reminder=reminder,
        letter_text=letter_text.strip(), kind=receipt.kind, kind_label=RECEIPT_KINDS[receipt.kind],
        is_proposal=receipt.is_proposal)


def content_for_receipt(session: Session, *, organisation_id: int, receipt_id: int, number: int | None,
                        letter_date: date, fixed_fees: Decimal = Decimal("0.00")) -> NoticeContent | None:
    """The notice of one receipt of the organisation (None if there is no such receipt)."""
    receipt = get_scoped(session, Receipt, receipt_id, organisation_id)
    if receipt is None:
        return None
    contract = session.get(Contract, receipt.contract_id)
    assert contract is not None
    client, entity = session.get(Client, contract.client_id), session.get(LegalEntity, contract.legal_entity_id)
    assert client is not None and entity is not None
    return build_content(entity=entity, client=client, contract=contract, receipt=receipt, number=number,
                         letter_date=letter_date, fixed_fees=fixed_fees)


def notice_html(content: NoticeContent) -> str:
    """The notice as HTML (autoescaped: every value is the client's or the entity's text)."""
    return _ENV.get_template("avis_echeance.html").render(n=content)


def render_notice(content: NoticeContent, *, timeout_seconds: float = 30.0) -> bytes:
    """The notice as PDF bytes. Blocking (a child process): call it from a worker thread in async code."""
    return render_pdf(notice_html(content), timeout_seconds=timeout_seconds)
