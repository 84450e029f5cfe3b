"""Bounded request parameters, and the French words for a refused one.

Every integer a request carries is bounded in the schema, so an out-of-range number is refused with 422 before it
reaches PostgreSQL (a bigint stops at 2⁶³ − 1, a LIMIT cannot be negative). The services use these types in their
API and views instead of bare `int`; `french_errors` turns FastAPI's validation errors into messages saying what
and where.
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path, Query
from sqlalchemy.exc import DataError

MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_PAGE = 100_000
MAX_PER_PAGE = 500

RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="Identifiant (entier, à partir de 1)")]
PageNo = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page (de 1 à {MAX_PAGE})")]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description=f"Lignes par page ({MAX_PER_PAGE} au maximum)")]

_PLACES = {"query": "Paramètre « {} »", "path": "« {} » dans l'adresse", "header": "En-tête « {} »",
           "cookie": "Cookie « {} »"}
_DATE = "date attendue (aaaa-mm-jj)"
_DATETIME = "date et heure attendues (aaaa-mm-jjThh:mm:ss)"
_WHAT = {
    "missing": "obligatoire",
    "int_parsing": "nombre entier attendu", "int_type": "nombre entier attendu",
    "int_from_float": "nombre entier attendu (sans décimales)",
    "float_parsing": "nombre attendu", "float_type": "nombre attendu", "finite_number": "nombre fini attendu",
    "decimal_parsing": "nombre décimal attendu", "decimal_type": "nombre décimal attendu",
    "decimal_max_digits": "{max_digits} chiffres au maximum",
    "decimal_max_places": "{decimal_places} décimales au maximum",
    "decimal_whole_digits": "{whole_digits} chiffres au maximum avant la virgule",
    "greater_than_equal": "{ge} au minimum", "greater_than": "doit être supérieur à {gt}",
    "less_than_equal": "{le} au maximum", "less_than": "doit être inférieur à {lt}",
    "string_too_long": "{max_length} caractères au maximum", "string_too_short": "{min_length} caractère(s) au minimum",
    "too_long": "{max_length} éléments au maximum", "too_short": "{min_length} élément(s) au minimum",
    "string_pattern_mismatch": "format invalide", "string_type": "texte attendu",
    "bool_parsing": "vrai ou faux attendu (true / false)", "bool_type": "vrai ou faux attendu (true / false)",
    "literal_error": "valeur attendue : {expected}", "enum": "valeur attendue : {expected}",
    "date_parsing": _DATE, "date_type": _DATE, "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE, "datetime_parsing": _DATETIME, "datetime_type": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "extra_forbidden": "champ inconnu", "json_invalid": "JSON invalide", "json_type": "JSON invalide",
    "model_type": "objet JSON attendu", "model_attributes_type": "objet JSON attendu",
    "dict_type": "objet JSON attendu",
    "list_type": "liste attendue",
}
_SHOWS_INPUT = {"greater_than_equal", "greater_than", "less_than_equal", "less_than", "int_parsing", "int_from_float",
                "float_parsing", "decimal_parsing", "literal_error", "enum", "date_parsing", "datetime_parsing",
                "date_from_datetime_parsing", "datetime_from_date_parsing", "bool_parsing"}


def _place(loc: Sequence[Any]) -> str:
    source, *rest = loc or ("body",)
    if source in _PLACES and rest:
        return _PLACES[source].format(rest[0])
    if not rest:
        return "Corps de la requête"
    dotted = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest).lstrip(".")
    return f"Champ « {dotted} »"


def french_message(error: dict[str, Any]) -> str:
    """One refused value, in French: where it is, what was expected, and what was received."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "value_error":  # a validator's own message
        what = str(ctx.get("error") or error.get("msg", "")).removeprefix("Value error, ")
    elif kind in _WHAT:
        words = {k: str(v).replace("' or '", "' ou '") for k, v in ctx.items()}
        try:
            what = _WHAT[kind].format(**words)
        except (KeyError, IndexError):
            what = _WHAT[kind].split("{")[0].strip() or "valeur refusée"
    else:
        what = "valeur refusée"
    if kind in _SHOWS_INPUT and isinstance(error.get("input"), str | int | float):
        shown = str(error["input"])
        what += f" (reçu « {shown[:40]}{'…' if len(shown) > 40 else ''} »)"
    return f"{_place(error.get('loc', ()))} : {what}."


def french_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors with their `loc` and `type`, the message in French (the input is not echoed)."""
    return [{"loc": list(e.get("loc", ())), "type": e.get("type", ""), "msg": french_message(e)} for e in errors]


def database_refusal(exc: DataError) -> str:
    """What to tell a caller whose value PostgreSQL refused (psycopg's DataError: SQLSTATE class 22)."""
    reason, state = str(exc.orig), getattr(exc.orig, "sqlstate", None)
    if "NUL" in reason:
        return "Le texte envoyé contient un caractère nul (\\0) : retirez-le et renvoyez la requête."
    if state == "22003":
        return "Un nombre envoyé est hors des limites acceptées."
    if state in ("22007", "22008"):
        return "Une date envoyée est hors des limites acceptées."
    return "Une valeur envoyée ne peut pas être enregistrée telle quelle."
