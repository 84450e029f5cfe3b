"""Fleet reference data: drivers ("utilisateurs") and vehicles ("matériels"), searched and imported from Excel.

Imports are all-or-nothing: every line is validated first and every problem reported (row, column, reason);
only a clean file is written, as one upsert by matricule / immatriculation.
"""

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped
from core.excel import ExcelError, ExcelIssue, ExcelRow, parse_date, parse_int, parse_text, read_xlsx
from core.ui import Page, paginate
from services.campaigns.departements import departement_from_postal_code
from services.campaigns.models import Driver, Vehicle
from services.campaigns.service.orgchart import org_chart

PER_PAGE = 50
DRIVER_COLUMNS = {
    "Matricule": "matricule", "Civilité": "civilite", "Nom": "nom", "Prénom": "prenom", "Email": "email",
    "Adresse": "adresse", "Code postal": "code_postal", "Ville": "ville", "Responsable": "responsable_nom",
    "Email responsable": "responsable_email", "Valideur": "valideur_nom", "Email valideur": "valideur_email",
    "Code groupe": "code_groupe", "Code société": "code_societe", "Code imputation": "code_imputation",
}
VEHICLE_COLUMNS = {
    "Immatriculation": "immatriculation", "Type": "type_materiel", "Marque": "marque", "Modèle": "modele",
    "Gamme": "gamme", "Loueur": "loueur", "Mode de gestion": "mode_gestion", "Fournisseur": "fournisseur",
    "Date de fin": "date_fin", "Durée de contrat (mois)": "duree_contrat_mois",
    "Matricule conducteur": "driver_id", "Futur véhicule": "futur_vehicule",
    "Dernier relevé (km)": "dernier_releve_km", "Date dernier relevé": "date_dernier_releve",
    "Situation": "situation", "Date de situation": "situation_date",
}
DRIVER_HEADERS, VEHICLE_HEADERS = list(DRIVER_COLUMNS), list(VEHICLE_COLUMNS)
RULES = {  # shown on the import pages, next to each expected column
    "Matricule": "obligatoire, unique dans le fichier ; clé de mise à jour", "Civilité": "M. ou Mme",
    "Nom": "obligatoire", "Prénom": "obligatoire", "Email": "adresse e-mail valide",
    "Code postal": "5 chiffres (le département en est déduit, Corse et outre-mer compris)",
    "Responsable": "nom d'une personne de l'organigramme, utilisatrice ou non",
    "Valideur": "nom d'une personne de l'organigramme, utilisatrice ou non",
    "Email responsable": "adresse e-mail valide ; obligatoire avec un responsable (elle l'identifie)",
    "Email valideur": "adresse e-mail valide ; obligatoire avec un valideur (elle l'identifie)",
    "Immatriculation": "obligatoire, unique dans le fichier ; AA-123-AA ou 1234 AB 56 ; clé de mise à jour",
    "Type": "VP, VU…", "Mode de gestion": "LLD, Achat…", "Date de fin": "jj/mm/aaaa",
    "Durée de contrat (mois)": "nombre entier", "Matricule conducteur": "matricule d'un utilisateur existant",
    "Dernier relevé (km)": "nombre entier", "Date dernier relevé": "jj/mm/aaaa",
    "Situation": "Active ou Inactive (vide : Active)", "Date de situation": "jj/mm/aaaa, depuis quand",
}
SITUATIONS = ("Active", "Inactive")
CIVILITES = {"m": "M.", "m.": "M.", "mr": "M.", "monsieur": "M.", "mme": "Mme", "mme.": "Mme", "madame": "Mme"}
EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z]{2,}")
SIV = re.compile(r"([A-Z]{2})[- ]?(\d{3})[- ]?([A-Z]{2})")
FNI = re.compile(r"(\d{1,4}) ?([A-Z]{1,3}) ?(\d{2}|2A|2B|97\d)")
# Folded in SQL too; upper case listed as well because lower() leaves accented letters alone under the C locale.
ACCENTED, PLAIN = "àâäáãéèêëíìîïóòôöõúùûüçñÿÀÂÄÁÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÇÑŸ", "aaaaaeeeeiiiiooooouuuucny" * 2
Parser = Callable[[Any], Any]


@dataclass
class ImportReport:
    created: int
    updated: int
    note: str = ""  # what else the file brought (the drivers file: the organisation chart)

    @property
    def total(self) -> int:
        return self.created + self.updated


# --- search and records ---

def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _matches(words: str, columns: Iterable[Any]) -> ColumnElement[bool]:
    """Every word found in one of the columns, ignoring case and accents ("lea andre" finds "Léa André")."""
    columns = list(columns)
    clauses = []
    for word in _fold(words).split():
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*(func.translate(func.lower(c), ACCENTED, PLAIN).like(pattern, escape="\\")
                             for c in columns)))
    return and_(*clauses)


def search_drivers(session: Session, *, organisation_id: int, q: str = "", departement: str = "",
                   page: int = 1) -> Page[Driver]:
    """Drivers of the organisation matching the search words (matricule, names, e-mail) and département."""
    stmt = scoped(Driver, organisation_id)
    if q.strip():
        stmt = stmt.where(_matches(q, (Driver.matricule, Driver.nom, Driver.prenom, Driver.email)))
    if departement:
        stmt = stmt.where(Driver.departement == departement)
    return paginate(session, stmt.order_by(Driver.nom, Driver.prenom, Driver.id), page=page, per_page=PER_PAGE)


@dataclass
class VehicleFilters:
    """The Matériels list's search, column filters and sort (`sort` a key of SORTS, `descending` its order)."""

    q: str = ""
    type_materiel: str = ""
    situation: str = ""
    marque: str = ""
    mode_gestion: str = ""
    fournisseur: str = ""
    sort: str = "immat"
    descending: bool = False


# Sortable columns of the Matériels list, in the seed's order: key → (heading, columns sorted on).
SORTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "situation": ("Situation", (Vehicle.situation, Vehicle.situation_date)),
    "type": ("Type de matériel", (Vehicle.type_materiel,)),
    "immat": ("Immat.", (Vehicle.immatriculation,)),
    "utilisateur": ("Nom de l'utilisateur", (Driver.nom, Driver.prenom)),
    "marque": ("Marque", (Vehicle.marque,)),
    "modele": ("Modèle", (Vehicle.modele,)),
    "gamme": ("Gamme", (Vehicle.gamme,)),
    "date_fin": ("Date fin", (Vehicle.date_fin,)),
    "gestion": ("Gestion", (Vehicle.mode_gestion,)),
    "fournisseur": ("Fournisseur", (Vehicle.fournisseur,)),
}
# Column filters (exact values, chosen among those in use): filter field → column.
CHOICE_COLUMNS = {"type_materiel": Vehicle.type_materiel, "situation": Vehicle.situation, "marque": Vehicle.marque,
                  "mode_gestion": Vehicle.mode_gestion, "fournisseur": Vehicle.fournisseur}


def search_vehicles(session: Session, *, organisation_id: int, filters: VehicleFilters | None = None,
                    page: int = 1) -> Page[Any]:
    """(vehicle, driver or None) rows matching the search words (immatriculation with or without dashes, marque,
    modèle, driver name) and the column filters, sorted on one column (empty values last)."""
    filters = filters or VehicleFilters()
    stmt: Select[Any] = scoped(Vehicle, organisation_id).add_columns(Driver).outerjoin(
        Driver, and_(Driver.id == Vehicle.driver_id, Driver.organisation_id == organisation_id))
    if filters.q.strip():
        plate = func.replace(func.replace(Vehicle.immatriculation, "-", ""), " ", "")
        words = " ".join(w.replace("-", "") for w in filters.q.split())
        stmt = stmt.where(_matches(words, (plate, Vehicle.marque, Vehicle.modele, Driver.nom, Driver.prenom)))
    for name, column in CHOICE_COLUMNS.items():
        if value := getattr(filters, name):
            stmt = stmt.where(column == value)
    _, columns = SORTS.get(filters.sort, SORTS["immat"])
    order = [(c.desc() if filters.descending else c.asc()).nulls_last() for c in columns]
    return paginate(session, stmt.order_by(*order, Vehicle.immatriculation, Vehicle.id), page=page,
                    per_page=PER_PAGE)


def vehicle_choices(session: Session, *, organisation_id: int) -> dict[str, list[str]]:
    """The values each filtered column takes in the organisation (choices of the list's filters)."""
    choices: dict[str, list[str]] = {}
    for name, column in CHOICE_COLUMNS.items():
        stmt = scoped(Vehicle, organisation_id).with_only_columns(column).where(column.is_not(None)).distinct()
        choices[name] = sorted(session.scalars(stmt))
    return choices


def get_driver(session: Session, *, organisation_id: int, driver_id: int) -> Driver | None:
    """One driver of the organisation, or None."""
    return get_scoped(session, Driver, driver_id, organisation_id)


def get_vehicle(session: Session, *, organisation_id: int, vehicle_id: int) -> Vehicle | None:
    """One vehicle of the organisation, or None."""
    return get_scoped(session, Vehicle, vehicle_id, organisation_id)


def driver_vehicles(session: Session, *, organisation_id: int, driver_id: int) -> list[Vehicle]:
    """The vehicles assigned to a driver."""
    stmt = scoped(Vehicle, organisation_id).where(Vehicle.driver_id == driver_id)
    return list(session.scalars(stmt.order_by(Vehicle.immatriculation)))


def situation(vehicle: Vehicle, today: date) -> str:
    """«Situation» with its date, as the seed shows it: "Active depuis le 01/02/2024" ("à partir du" when the date
    is still to come), the bare situation when no date was given."""
    if vehicle.situation_date is None:
        return vehicle.situation
    since = "à partir du" if vehicle.situation_date > today else "depuis le"
    return f"{vehicle.situation} {since} {vehicle.situation_date.strftime('%d/%m/%Y')}"


# --- cell parsers (ValueError carries the French reason) ---

def _text(model: type[Any], attr: str, upper: bool = False) -> Parser:
    limit = model.__table__.c[attr].type.length

    def parse(value: Any) -> str | None:
        text = parse_text(value)
        if text and len(text) > limit:
            raise ValueError(f"{limit} caractères au maximum ({len(text)} saisis)")
        return text.upper() if text and upper else text

    return parse


def _email(value: Any) -> str | None:
    text = parse_text(value)
    if text and (len(text) > 320 or not EMAIL.fullmatch(text)):
        raise ValueError(f"adresse e-mail invalide « {text} »")
    return text


def _civilite(value: Any) -> str | None:
    text = parse_text(value)
    if text and text.lower() not in CIVILITES:
        raise ValueError(f"civilité « {text} » inconnue : M. ou Mme attendu")
    return CIVILITES[text.lower()] if text else None


def _postal_code(value: Any) -> str | None:
    # A postal code typed in a number cell loses its leading zero (1000 for 01000).
    text = str(value).zfill(5) if isinstance(value, int) and 0 < value < 100000 else parse_text(value)
    if text and not re.fullmatch(r"\d{5}", text):
        raise ValueError(f"code postal invalide « {text} » : 5 chiffres attendus")
    if text and departement_from_postal_code(text) is None:
        raise ValueError(f"code postal « {text} » hors des départements français")
    return text


def normalise_plate(value: Any) -> str | None:
    """"ab123cd" → "AB-123-CD" (SIV), "1234ab56" → "1234 AB 56" (FNI); ValueError otherwise."""
    text = parse_text(value)
    if not text:
        return None
    compact = re.sub(r"\s+", " ", text.upper())
    if siv := SIV.fullmatch(compact):
        return "-".join(siv.groups())
    if fni := FNI.fullmatch(compact.replace("-", " ")):
        return " ".join(fni.groups())
    raise ValueError(f"immatriculation invalide « {text} » : format AA-123-AA ou 1234 AB 56 attendu")


def _situation(value: Any) -> str | None:
    text = parse_text(value)
    if not text:
        return None
    found = next((s for s in SITUATIONS if s.lower() == text.lower()), None)
    if found is None:
        raise ValueError(f"situation « {text} » inconnue : {' ou '.join(SITUATIONS)} attendu")
    return found


def _int(maximum: int) -> Parser:
    return lambda value: parse_int(value, minimum=0, maximum=maximum)


_DRIVER_SPECIAL: dict[str, Parser] = {"Civilité": _civilite, "Email": _email, "Email responsable": _email,
                                      "Email valideur": _email, "Code postal": _postal_code}
_VEHICLE_SPECIAL: dict[str, Parser] = {
    "Immatriculation": normalise_plate, "Type": _text(Vehicle, "type_materiel", upper=True),
    "Mode de gestion": _text(Vehicle, "mode_gestion", upper=True), "Date de fin": parse_date,
    "Durée de contrat (mois)": _int(600), "Matricule conducteur": _text(Driver, "matricule"),
    "Dernier relevé (km)": _int(9_999_999), "Date dernier relevé": parse_date,
    "Situation": _situation, "Date de situation": parse_date,
}
DRIVER_PARSERS = {h: _DRIVER_SPECIAL.get(h) or _text(Driver, attr) for h, attr in DRIVER_COLUMNS.items()}
VEHICLE_PARSERS = {h: _VEHICLE_SPECIAL.get(h) or _text(Vehicle, attr) for h, attr in VEHICLE_COLUMNS.items()}


def _validate(rows: list[ExcelRow], parsers: dict[str, Parser], required: set[str],
              key: str) -> tuple[list[tuple[int, dict[str, Any]]], list[ExcelIssue]]:
    """Parse every cell of every row; duplicate keys are errors too."""
    records: list[tuple[int, dict[str, Any]]] = []
    issues: list[ExcelIssue] = []
    seen: dict[str, int] = {}
    for row in rows:
        record: dict[str, Any] = {}
        for header, parse in parsers.items():
            raw = row.values.get(header)
            try:
                record[header] = None if raw is None else parse(raw)
            except ValueError as exc:
                issues.append(ExcelIssue(row.number, header, str(exc)))
                continue
            if record[header] is None and header in required:
                issues.append(ExcelIssue(row.number, header, "valeur obligatoire"))
        if (value := record.get(key)) is not None:
            if value in seen:
                issues.append(ExcelIssue(row.number, key, f"« {value} » en double : déjà en ligne {seen[value]}"))
            seen.setdefault(value, row.number)
        records.append((row.number, record))
    return records, issues


def _read(data: bytes, headers: list[str]) -> tuple[list[ExcelRow], list[ExcelIssue]]:
    try:
        rows = read_xlsx(data, expected_headers=headers)
    except ExcelError as exc:
        return exc.rows, exc.issues  # rows come back when only some cells were refused
    if not rows:
        return [], [ExcelIssue(None, None, "Le fichier ne contient aucune ligne de données sous les en-têtes.")]
    return rows, []


def _merge(refused: list[ExcelIssue], found: list[ExcelIssue]) -> list[ExcelIssue]:
    """All problems by row; a cell refused by the reader (a formula) is not also reported as empty."""
    cells = {(i.row, i.column) for i in refused}
    return sorted(refused + [i for i in found if (i.row, i.column) not in cells], key=lambda i: i.row or 0)


def _upsert(session: Session, model: type[Driver] | type[Vehicle], key: str, organisation_id: int,
            values: list[dict[str, Any]]) -> ImportReport:
    """Insert or update by (organisation, key), in batches; the caller's transaction makes it all-or-nothing."""
    column = getattr(model, key)
    keys = [v[key] for v in values]
    existing = set(session.scalars(scoped(model, organisation_id).with_only_columns(column).where(column.in_(keys))))
    stmt = insert(model)
    updates: dict[str, Any] = {name: stmt.excluded[name] for name in values[0] if name != key}
    updates["updated_at"] = func.now()
    stmt = stmt.on_conflict_do_update(index_elements=["organisation_id", key], set_=updates)
    for start in range(0, len(values), 1000):
        session.execute(stmt, [{"organisation_id": organisation_id, **v} for v in values[start:start + 1000]])
    session.expire_all()  # loaded rows would be stale after the bulk statement
    return ImportReport(created=len(set(keys) - existing), updated=len(existing))


def import_drivers(session: Session, *, organisation_id: int, data: bytes) -> ImportReport | list[ExcelIssue]:
    """Create or update drivers from an .xlsx; the list of problems (and no change) if any line is wrong."""
    rows, refused = _read(data, DRIVER_HEADERS)
    if refused and not rows:
        return refused
    records, issues = _validate(rows, DRIVER_PARSERS, {"Matricule", "Nom", "Prénom"}, "Matricule")
    for number, record in records:
        for role in ("Responsable", "Valideur"):
            if record.get(role) and not record.get(f"Email {role.lower()}"):
                issues.append(ExcelIssue(number, f"Email {role.lower()}",
                                         f"adresse e-mail obligatoire quand un {role.lower()} est nommé : c'est elle "
                                         "qui identifie cette personne dans l'organigramme"))
    if issues := _merge(refused, issues):
        return issues
    values = [{DRIVER_COLUMNS[h]: v for h, v in record.items()} for _, record in records]
    for v in values:
        v["departement"] = departement_from_postal_code(v["code_postal"])
    report = _upsert(session, Driver, "matricule", organisation_id, values)
    people = org_chart(session, organisation_id=organisation_id)
    if people:
        outside = sum(p.driver_id is None for p in people)
        report.note = (f"organigramme : {len(people)} valideur(s) et responsable(s), dont {outside} qui ne "
                       f"sont pas utilisateurs")
    return report


def import_vehicles(session: Session, *, organisation_id: int, data: bytes) -> ImportReport | list[ExcelIssue]:
    """Create or update vehicles from an .xlsx (drivers by matricule); the problems and no change if any."""
    rows, refused = _read(data, VEHICLE_HEADERS)
    if refused and not rows:
        return refused
    records, issues = _validate(rows, VEHICLE_PARSERS, {"Immatriculation"}, "Immatriculation")
    wanted = {r["Matricule conducteur"] for _, r in records if r.get("Matricule conducteur")}
    stmt = scoped(Driver, organisation_id).with_only_columns(Driver.matricule, Driver.id)
    driver_ids: dict[str, int] = {m: i for m, i in session.execute(stmt.where(Driver.matricule.in_(wanted)))}
    for number, record in records:
        if (matricule := record.get("Matricule conducteur")) and matricule not in driver_ids:
            issues.append(ExcelIssue(number, "Matricule conducteur",
                                     f"aucun utilisateur de matricule « {matricule} » dans votre organisation"))
    if issues := _merge(refused, issues):
        return issues
    values = []
    for _, record in records:
        matricule = record.pop("Matricule conducteur")
        values.append({VEHICLE_COLUMNS[h]: v for h, v in record.items()}
                      | {"driver_id": driver_ids.get(matricule), "situation": record["Situation"] or "Active"})
    return _upsert(session, Vehicle, "immatriculation", organisation_id, values)
