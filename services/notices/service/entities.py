"""«Entités juridiques»: the broker's companies, their letterhead and their notice numbering.

A notice number is taken from the entity's counter by one UPDATE (the row lock orders concurrent runs): numbers of
an entity follow each other and are never given twice; a number taken by a run that is then abandoned is skipped.
"""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped
from services.notices.models import LegalEntity
from services.notices.service import fields as f

NOT_SUBJECT_TO_VAT = "NON SOUMIS A TVA"
CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,19}")
# Form field → (label, parser, required)
FORM: dict[str, tuple[str, f.Parser, bool]] = {
    "code": ("Code", f.text(20, upper=True), True),
    "name": ("Raison sociale", f.text(200), True),
    "address1": ("Adresse", f.text(200), True),
    "address2": ("Complément d'adresse", f.text(200), False),
    "postal_code": ("Code postal", f.postal_code, True),
    "town": ("Ville", f.text(100, upper=True), True),
    "phone": ("Tel", f.text(30), False),
    "fax": ("Fax", f.text(30), False),
    "email": ("e-mail", f.email, False),
    "vat_number": ("N° de TVA intracommunautaire", f.text(30, upper=True), False),
    "letter_town": ("Ville de la date des avis", f.text(100, upper=True), False),
    "next_notice_no": ("Prochain n° d'avis", f.whole(1, 2_000_000_000), False),
    # A checkbox: absent from the form means unticked (E → V at once, no manager validation).
    "manual_confirmation": ("Confirmation manuelle des avis d'échéances à envoyer par mail", f.yes_no(False), False),
}


@dataclass
class EntityForm:
    values: dict[str, Any]
    errors: dict[str, str]


def vat_label(entity: LegalEntity) -> str:
    """What the letterhead prints after «N° de TVA intracommunautaire :»."""
    return entity.vat_number or NOT_SUBJECT_TO_VAT


def list_entities(session: Session, *, organisation_id: int) -> list[LegalEntity]:
    """The organisation's legal entities, by code."""
    return list(session.scalars(scoped(LegalEntity, organisation_id).order_by(LegalEntity.code)))


def get_entity(session: Session, *, organisation_id: int, entity_id: int) -> LegalEntity | None:
    """One entity of the organisation, or None."""
    return get_scoped(session, LegalEntity, entity_id, organisation_id)


def check_form(raw: dict[str, str], *, current: LegalEntity | None = None) -> EntityForm:
    """The form's values parsed, with a French message per refused field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, (label, parse, required) in FORM.items():
        try:
            values[name] = parse(raw.get(name) or None)
        except ValueError as exc:
            errors[name] = f"{label} : {exc}"
            continue
        if values[name] is None and required:
            errors[name] = f"{label} : valeur obligatoire"
    if values.get("code") and not CODE.fullmatch(values["code"]):
        errors["code"] = "Code : lettres majuscules, chiffres, - ou _ (20 au maximum)"
    if values.get("vat_number") == NOT_SUBJECT_TO_VAT:
        values["vat_number"] = None
    values["letter_town"] = values.get("letter_town") or values.get("town")
    wanted = values.get("next_notice_no")
    if current is not None and wanted is not None and wanted < current.next_notice_no:
        errors["next_notice_no"] = (f"Prochain n° d'avis : {current.next_notice_no} au moins (un numéro déjà "
                                    "donné ne se réattribue jamais)")
    if wanted is None:
        values.pop("next_notice_no", None)
    return EntityForm(values, errors)


def save_entity(session: Session, *, organisation_id: int, form: EntityForm,
                current: LegalEntity | None = None) -> LegalEntity | None:
    """Create or update an entity from a checked form; None (and `form.errors` set) if its code is taken."""
    entity = current or LegalEntity(organisation_id=organisation_id)
    for name, value in form.values.items():
        setattr(entity, name, value)
    if current is not None and "next_notice_no" in form.values:  # a run may have taken numbers meanwhile
        entity.next_notice_no = func.greatest(LegalEntity.next_notice_no, form.values["next_notice_no"])  # type: ignore[assignment]
    try:
        with session.begin_nested():  # added inside the savepoint: a refused insert leaves nothing pending
            if current is None:
                session.add(entity)
            session.flush()
    except IntegrityError:
        form.errors["code"] = f"Code : une autre entité a déjà le code « {form.values['code']} »"
        return None
    return entity


def take_notice_number(session: Session, *, organisation_id: int, entity_id: int) -> int:
    """The entity's next «Avis d'échéance n°», taken for good (the counter moves on in the same transaction)."""
    number = session.scalar(update(LegalEntity)
                            .where(LegalEntity.id == entity_id, LegalEntity.organisation_id == organisation_id)
                            .values(next_notice_no=LegalEntity.next_notice_no + 1)
                            .returning(LegalEntity.next_notice_no - 1))
    if number is None:
        raise LookupError(f"entité juridique {entity_id} introuvable")
    return int(number)
