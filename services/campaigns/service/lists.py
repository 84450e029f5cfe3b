"""Listes de diffusion: filters stored as JSON, resolved to drivers by one SQL query.

Immatriculation, Valideur and Responsable include or exclude either as a whole (utilisateurs with a vehicle, the
valideurs / responsables themselves) or by picked values: the utilisateurs of those plates, the teams of those people
of the organisation chart (`orgchart`), drivers or not.
"""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from core.db import get_scoped, scoped, utcnow
from core.models import User
from services.campaigns.models import Campaign, DistributionList, Driver, Vehicle
from services.campaigns.service.orgchart import ROLES, org_chart

MODES = {"": "Indifférent", "inclure": "Inclure", "exclure": "Exclure"}
CODE_FIELDS = {"code_groupe": "Code groupe", "code_societe": "Code société", "code_imputation": "Code imputation"}
FLAG_FIELDS = {
    "immatriculation": "Immatriculation",
    "valideur": "Valideur",
    "responsable": "Responsable",
}
# Where each flag keeps its picked values: plates, or e-mail addresses of people of the organisation chart.
PICK_KEYS = {"immatriculation": "plaques", "valideur": "valideurs", "responsable": "responsables"}
PICKED_WORDS = {"immatriculation": "les utilisateurs des matériels", "valideur": "les utilisateurs validés par",
                "responsable": "les utilisateurs dont le responsable est"}
WHOLE_WORDS = {"immatriculation": "les utilisateurs avec un matériel affecté",
               "valideur": "les valideurs eux-mêmes", "responsable": "les responsables eux-mêmes"}


@dataclass
class ListForm:
    name: str = ""
    departements: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)  # immatriculation / valideur / responsable → mode
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code field → {"mode", "values"}
    picks: dict[str, list[str]] = field(default_factory=dict)  # flag → picked plates / e-mail addresses

    @classmethod
    def from_list(cls, dlist: DistributionList) -> "ListForm":
        f = dlist.filters or {}
        return cls(dlist.name, list(f.get("departements", [])), {k: f.get(k, "") for k in FLAG_FIELDS},
                   {k: dict(f.get(k) or {"mode": "", "values": []}) for k in CODE_FIELDS},
                   {k: list(f.get(PICK_KEYS[k]) or []) for k in FLAG_FIELDS})

    def filters(self) -> dict[str, Any]:
        picks = {PICK_KEYS[k]: sorted(set(self.picks.get(k) or [])) for k in FLAG_FIELDS}
        return {"departements": sorted(set(self.departements)), **self.flags, **picks, **self.codes}


def _email_key(column: Any) -> ColumnElement[str]:
    return func.lower(func.trim(column))


def _picked(organisation_id: int, name: str, values: list[str]) -> ColumnElement[bool]:
    """The utilisateurs of the picked plates, or validated / managed by the picked people (never NULL)."""
    if name == "immatriculation":
        return exists().where(Vehicle.driver_id == Driver.id, Vehicle.organisation_id == organisation_id,
                              Vehicle.immatriculation.in_(values))
    return func.coalesce(_email_key(ROLES[name][0]), "").in_([v.lower() for v in values])


def _whole(organisation_id: int, name: str) -> ColumnElement[bool]:
    """Utilisateurs with a vehicle; or who are valideur / responsable of another utilisateur of the organisation."""
    if name == "immatriculation":
        return exists().where(Vehicle.driver_id == Driver.id)
    other = aliased(Driver)
    return exists().where(other.organisation_id == organisation_id,
                          _email_key(getattr(other, f"{name}_email")) == _email_key(Driver.email))


def recipients_query(organisation_id: int, filters: dict[str, Any]) -> Select[Driver]:
    """Drivers of the organisation that the list's filters select (ordered by name)."""
    stmt = scoped(Driver, organisation_id)
    if deps := filters.get("departements"):
        stmt = stmt.where(Driver.departement.in_(deps))
    for name in FLAG_FIELDS:
        mode, picked = filters.get(name) or "", filters.get(PICK_KEYS[name]) or []
        if mode in ("inclure", "exclure"):
            condition = _picked(organisation_id, name, picked) if picked else _whole(organisation_id, name)
            stmt = stmt.where(condition if mode == "inclure" else ~condition)
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


def pick_choices(session: Session, *, organisation_id: int) -> dict[str, list[tuple[str, str]]]:
    """(value, label) of what each flag may pick: the organisation's plates (with their utilisateur), the people of
    its organisation chart who validate / manage someone (utilisateurs or not)."""
    plates = scoped(Vehicle, organisation_id).add_columns(Driver.nom, Driver.prenom).outerjoin(
        Driver, and_(Driver.id == Vehicle.driver_id, Driver.organisation_id == organisation_id))
    choices: dict[str, list[tuple[str, str]]] = {"immatriculation": [
        (v.immatriculation, f"{v.immatriculation} — {f'{nom} {prenom}' if nom else 'non affecté'}")
        for v, nom, prenom in session.execute(plates.order_by(Vehicle.immatriculation))]}
    for role in ROLES:
        choices[role] = [(p.email, f"{p.label()} — {p.counts[role]} utilisateur{'s' if p.counts[role] > 1 else ''}"
                                   f"{'' if p.driver_id else ', hors utilisateurs'}")
                         for p in org_chart(session, organisation_id=organisation_id, role=role)]
    return choices


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
    choices = pick_choices(session, organisation_id=organisation_id) if any(form.picks.values()) else {}
    for name, mode in form.flags.items():
        picked = form.picks.get(name) or []
        known = {value.lower() for value, _ in choices.get(name, [])}
        if mode not in MODES:
            errors[name] = "Choisissez Inclure, Exclure ou Indifférent."
        elif unknown := [v for v in picked if v.lower() not in known]:
            where = "votre flotte" if name == "immatriculation" else "l'organigramme"
            errors[name] = f"{FLAG_FIELDS[name]} : {', '.join(unknown)} inconnu(s) dans {where}."
        elif picked and not mode:
            errors[name] = f"{FLAG_FIELDS[name]} : choisissez Inclure ou Exclure pour les valeurs choisies."
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
            picked = filters.get(PICK_KEYS[name]) or []
            what = f"{PICKED_WORDS[name]} {', '.join(picked)}" if picked else WHOLE_WORDS[name]
            lines.append(f"{label} : {MODES[mode].lower()} {what}")
    for name, label in CODE_FIELDS.items():
        spec = filters.get(name) or {}
        if spec.get("mode") and spec.get("values"):
            lines.append(f"{label} : {MODES[spec['mode']].lower()} {', '.join(spec['values'])}")
    return lines or ["Aucun filtre : tous les utilisateurs de l'organisation."]
