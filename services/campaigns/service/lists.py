"""Listes de diffusion: filters stored as JSON, resolved to drivers by one SQL query."""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from core.db import get_scoped, scoped, utcnow
from core.models import User
from services.campaigns.models import Campaign, DistributionList, Driver, Vehicle

MODES = {"": "Indifférent", "inclure": "Inclure", "exclure": "Exclure"}
CODE_FIELDS = {"code_groupe": "Code groupe", "code_societe": "Code société", "code_imputation": "Code imputation"}
FLAG_FIELDS = {
    "immatriculation": "Immatriculation (matériel affecté)",
    "valideur": "Valideur",
    "responsable": "Responsable",
}


@dataclass
class ListForm:
    name: str = ""
    departements: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)  # immatriculation / valideur / responsable → mode
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code field → {"mode", "values"}

    @classmethod
    def from_list(cls, dlist: DistributionList) -> "ListForm":
        f = dlist.filters or {}
        return cls(dlist.name, list(f.get("departements", [])), {k: f.get(k, "") for k in FLAG_FIELDS},
                   {k: dict(f.get(k) or {"mode": "", "values": []}) for k in CODE_FIELDS})

    def filters(self) -> dict[str, Any]:
        return {"departements": sorted(set(self.departements)), **self.flags, **self.codes}


def _flag(condition: ColumnElement[bool], mode: str) -> ColumnElement[bool] | None:
    return condition if mode == "inclure" else ~condition if mode == "exclure" else None


def recipients_query(organisation_id: int, filters: dict[str, Any]) -> Select[Driver]:
    """Drivers of the organisation that the list's filters select (ordered by name)."""
    stmt = scoped(Driver, organisation_id)
    if deps := filters.get("departements"):
        stmt = stmt.where(Driver.departement.in_(deps))
    other = aliased(Driver)
    conditions = {
        "immatriculation": exists().where(Vehicle.driver_id == Driver.id),
        # A driver "is" valideur / responsable when another driver of the organisation names them so.
        "valideur": exists().where(other.organisation_id == organisation_id,
                                   func.lower(other.valideur_email) == func.lower(Driver.email)),
        "responsable": exists().where(other.organisation_id == organisation_id,
                                      func.lower(other.responsable_email) == func.lower(Driver.email)),
    }
    for name, condition in conditions.items():
        if (clause := _flag(condition, filters.get(name) or "")) is not None:
            stmt = stmt.where(clause)
    for name in CODE_FIELDS:
        spec = filters.get(name) or {}
        values, column = spec.get("values") or [], getattr(Driver, name)
        if values and spec.get("mode") == "inclure":
            stmt = stmt.where(column.in_(values))
        elif values and spec.get("mode") == "exclure":
            stmt = stmt.where(or_(column.is_(None), column.not_in(values)))
    return stmt.order_by(Driver.nom, Driver.prenom, Driver.id)


def count_recipients(session: Session, *, organisation_id: int, filters: dict[str, Any]) -> int:
    query = recipients_query(organisation_id, filters).order_by(None).subquery()
    return session.scalar(select(func.count()).select_from(query)) or 0


def code_values(session: Session, *, organisation_id: int) -> dict[str, list[str]]:
    """The values each code takes in the organisation (choices of the include/exclude filters)."""
    values: dict[str, list[str]] = {}
    for name in CODE_FIELDS:
        column = getattr(Driver, name)
        stmt = select(column).where(Driver.organisation_id == organisation_id, column.is_not(None)).distinct()
        values[name] = sorted(session.scalars(stmt))
    return values


def validate(session: Session, *, organisation_id: int, form: ListForm, list_id: int | None = None,
             departements: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not form.name.strip():
        errors["name"] = "Le nom de la liste est obligatoire."
    else:
        same = session.scalars(
            scoped(DistributionList, organisation_id).where(DistributionList.name == form.name.strip())
        ).first()
        if same is not None and same.id != list_id:
            errors["name"] = "Une liste porte déjà ce nom."
    if unknown := [d for d in form.departements if d not in departements]:
        errors["departements"] = f"Département inconnu : {', '.join(unknown)}."
    for name, mode in form.flags.items():
        if mode not in MODES:
            errors[name] = "Choisissez Inclure, Exclure ou Indifférent."
    for name, spec in form.codes.items():
        if spec.get("mode") not in MODES:
            errors[name] = "Choisissez Inclure, Exclure ou Indifférent."
        elif spec.get("mode") and not spec.get("values"):
            errors[name] = f"Choisissez au moins une valeur de {CODE_FIELDS[name].lower()} à {spec['mode']}."
    return errors


def save(session: Session, *, user: User, form: ListForm, dlist: DistributionList | None = None) -> DistributionList:
    if dlist is None:
        dlist = DistributionList(organisation_id=user.organisation_id, created_by_id=user.id)
        session.add(dlist)
    else:
        dlist.updated_by_id, dlist.updated_at = user.id, utcnow()
    dlist.name, dlist.filters = form.name.strip(), form.filters()
    session.flush()
    return dlist


def list_lists(session: Session, *, organisation_id: int) -> list[DistributionList]:
    return list(session.scalars(scoped(DistributionList, organisation_id).order_by(DistributionList.name)))


def get_list(session: Session, *, organisation_id: int, list_id: int) -> DistributionList | None:
    return get_scoped(session, DistributionList, list_id, organisation_id)


def used_by(session: Session, dlist: DistributionList) -> str | None:
    """Name of a campaign using the list (it cannot be deleted then)."""
    return session.scalars(select(Campaign.name).where(Campaign.list_id == dlist.id)).first()


def describe(filters: dict[str, Any], departements: dict[str, str]) -> list[str]:
    """The filters in words, for the recipients page ("Départements : 31, 33")."""
    lines = []
    if deps := filters.get("departements"):
        lines.append("Départements : " + ", ".join(f"{d} {departements.get(d, '')}".strip() for d in deps))
    for name, label in FLAG_FIELDS.items():
        if mode := filters.get(name):
            lines.append(f"{label} : {MODES[mode].lower()}")
    for name, label in CODE_FIELDS.items():
        spec = filters.get(name) or {}
        if spec.get("mode") and spec.get("values"):
            lines.append(f"{label} : {MODES[spec['mode']].lower()} {', '.join(spec['values'])}")
    return lines or ["Aucun filtre : tous les utilisateurs de l'organisation."]
