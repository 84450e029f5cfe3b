"""What a value of the reference data may be, checked the same way whether it comes from an Excel cell or from the
partner API: each parser takes a cell or JSON value and returns the stored value, or raises ValueError with the
French reason the import report and the API show."""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.excel import parse_date, parse_int, parse_text

Parser = Callable[[Any], Any]
EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z]{2,}")
MONTH = re.compile(r"(\d{1,2})[/-](\d{4})")
ISO_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
MAX_AMOUNT = Decimal("999999999.99")


@dataclass(frozen=True)
class Civility:
    """A «Titre» and what the letter makes of it."""

    title: str  # as printed in the recipient block
    salutation: str  # "Madame", "Monsieur", "Madame, Monsieur"… (the letter adds the comma)
    legal_person: bool = False  # a company: not covered by the consumer rules of the Code des assurances


_PERSONS = [
    (("m", "m.", "mr", "mr.", "monsieur"), Civility("M.", "Monsieur")),
    (("mme", "mme.", "madame"), Civility("Mme", "Madame")),
    # «Mademoiselle» left official forms in 2012: the letter says Madame, the title stays as the client had it.
    (("mlle", "mlle.", "mademoiselle"), Civility("Mlle", "Madame")),
    (("m. et mme", "m et mme", "mr et mme", "monsieur et madame", "mme et m.", "mme et m"),
     Civility("M. et Mme", "Madame, Monsieur")),
    (("mm.", "mm", "messieurs"), Civility("MM.", "Messieurs")),
    (("mmes", "mesdames"), Civility("Mmes", "Mesdames")),
    (("dr", "dr.", "docteur"), Civility("Dr", "Docteur")),
    (("me", "me.", "maître", "maitre"), Civility("Me", "Maître")),
    (("pr", "pr.", "professeur"), Civility("Pr", "Professeur")),
]
_COMPANIES = ("Société", "Sté", "SA", "SARL", "SAS", "SASU", "EURL", "SCI", "SCP", "SNC", "SELARL", "GAEC", "EARL",
              "Ets", "Association", "Cabinet", "Syndicat", "Mairie", "Commune")
CIVILITIES: dict[str, Civility] = {alias: civility for aliases, civility in _PERSONS for alias in aliases}
CIVILITIES.update({name.lower(): Civility(name, "Madame, Monsieur", legal_person=True) for name in _COMPANIES})
CIVILITIES["ste"] = CIVILITIES["sté"]
CIVILITIES["societe"] = CIVILITIES["société"]
NO_TITLE = Civility("", "Madame, Monsieur")
TITLE_RULE = "M., Mme, Mlle, M. et Mme, MM., Mmes, Dr, Me, Pr, ou une forme de société (SARL, SAS, SCI…)"
YES = {"oui", "o", "x", "vrai", "1", "yes", "true"}
NO = {"non", "n", "faux", "0", "no", "false"}


def civility(title: str | None) -> Civility:
    """What the letter makes of a stored «Titre» (no title: "Madame, Monsieur")."""
    return CIVILITIES.get((title or "").strip().lower(), NO_TITLE)


def fold(text: str) -> str:
    """"Confié" → "confie": lower case without accents, for the choices typed by people."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.strip().lower()) if not unicodedata.combining(c))


def text(limit: int, *, upper: bool = False) -> Parser:
    def parse(value: Any) -> str | None:
        found = parse_text(value)
        if found and len(found) > limit:
            raise ValueError(f"{limit} caractères au maximum ({len(found)} saisis)")
        return found.upper() if found and upper else found

    return parse


def title(value: Any) -> str | None:
    found = parse_text(value)
    if not found:
        return None
    known = CIVILITIES.get(re.sub(r"\s+", " ", found).lower())
    if known is None:
        raise ValueError(f"titre « {found} » inconnu : {TITLE_RULE}")
    return known.title


def email(value: Any) -> str | None:
    found = parse_text(value)
    if found and (len(found) > 320 or not EMAIL.fullmatch(found)):
        raise ValueError(f"adresse e-mail invalide « {found} »")
    return found.lower() if found else None


def postal_code(value: Any) -> str | None:
    # A postal code typed in a number cell loses its leading zero (1000 for 01000).
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 100000:
        return str(value).zfill(5)
    found = parse_text(value)
    if found and not re.fullmatch(r"\d{5}", found):
        raise ValueError(f"code postal invalide « {found} » : 5 chiffres attendus")
    return found


def yes_no(default: bool) -> Parser:
    def parse(value: Any) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        found = fold(parse_text(value) or "")
        if found in YES:
            return True
        if found in NO:
            return False
        raise ValueError(f"« {parse_text(value)} » : Oui ou Non attendu")

    return parse


def status_letter(value: Any) -> str | None:
    found = (parse_text(value) or "").upper()
    if found and found not in ("C", "D", "P"):
        raise ValueError(f"statut « {found} » inconnu : C, D ou P attendu")
    return found or None


def choice(options: dict[str, str]) -> Parser:
    """One of `options` (stored key → label), typed as the label or the key, accents and case ignored."""
    known = {fold(key): key for key in options} | {fold(label): key for key, label in options.items()}

    def parse(value: Any) -> str | None:
        found = parse_text(value)
        if found is None:
            return None
        if (key := known.get(re.sub(r"\s+", " ", fold(found)))) is not None:
            return key
        *first, last = options.values()
        raise ValueError(f"« {found} » : {', '.join(first) + ' ou ' if first else ''}{last} attendu")

    return parse


def amount(value: Any) -> Decimal | None:
    """Euros with at most two decimals, from a number cell, a JSON number or text ("1 234,50")."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("montant attendu")
    if isinstance(value, float):
        value = repr(value)
    raw = value if isinstance(value, Decimal) else re.sub(r"[\s\u00a0\u202f€]", "", str(value)).replace(",", ".")
    try:
        number = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValueError(f"montant attendu (ex. 1234,56), trouvé « {parse_text(value)} »") from None
    if not number.is_finite() or abs(number) > MAX_AMOUNT:
        raise ValueError(f"montant hors limites « {parse_text(value)} »")
    if number != number.quantize(Decimal("0.01")):
        raise ValueError(f"deux décimales au maximum, trouvé « {parse_text(value)} »")
    return number.quantize(Decimal("0.01"))


def day(value: Any) -> date | None:
    return None if value is None else parse_date(value)


def month(value: Any) -> date | None:
    """A month ("04/2009", "2009-04", or any date of it in a date cell) as its first day."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return date(value.year, value.month, 1)
    found = parse_text(value) or ""
    match = MONTH.fullmatch(found)
    parts = (match.group(2), match.group(1)) if match else None
    if parts is None and (iso := ISO_MONTH.fullmatch(found)):
        parts = (iso.group(1), iso.group(2))
    if parts is None:
        raise ValueError(f"mois attendu au format mm/aaaa, trouvé « {found} »")
    if not 1 <= int(parts[1]) <= 12 or not 1900 <= int(parts[0]) <= 2200:
        raise ValueError(f"mois inexistant « {found} »")
    return date(int(parts[0]), int(parts[1]), 1)


def whole(minimum: int, maximum: int) -> Parser:
    return lambda value: None if value is None else parse_int(value, minimum=minimum, maximum=maximum)
