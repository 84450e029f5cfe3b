"""Clients, contracts and receipts saved in batches, from an Excel file or the partner API, all or nothing.

Every value is checked by the parsers of `fields`, then against what the organisation already has (the client of a
contract, the contract of a receipt, the legal entity); one problem anywhere and nothing is written. A clean batch
is one upsert keyed by the record's number («Dossier», «N° de contrat», «N° de quittance»).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import scoped
from services.notices.models import (
    COLLECTIONS,
    RECEIPT_KINDS,
    RECEIPT_TYPES,
    Client,
    Contract,
    LegalEntity,
    Receipt,
)
from services.notices.service import fields as f

MAX_BATCH = 1000  # API items per call (an Excel file may hold more: it is written in slices of this size)


@dataclass(frozen=True)
class Column:
    header: str  # Excel header, as the manager reads it
    field: str  # API field; the model's attribute unless the kind resolves it (client_number → client_id)
    parse: f.Parser
    required: bool = False
    rule: str = ""  # shown next to the column on the import page


@dataclass(frozen=True)
class Problem:
    """One refused value: `index` is the item's position in the batch (0-based), `field` its API name."""

    index: int
    field: str | None
    message: str


@dataclass(frozen=True)
class SaveReport:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class Kind:
    name: str  # "clients" | "contracts" | "receipts"
    model: type[Client] | type[Contract] | type[Receipt]
    columns: tuple[Column, ...]
    key: str = "number"
    optional_tail: int = 0  # how many last columns an Excel file may leave out (added after files were made)

    def header(self, field: str | None) -> str | None:
        return next((c.header for c in self.columns if c.field == field), None)


YES_NO = "Oui ou Non"
CLIENTS = Kind("clients", Client, (
    Column("Dossier", "number", f.text(20), True, "obligatoire, unique ; clé de mise à jour (P5, CA13…)"),
    Column("Titre", "title", f.title, rule=f.TITLE_RULE),
    Column("Nom", "last_name", f.text(120), True, "obligatoire"),
    Column("Prénom", "first_name", f.text(120)),
    Column("Adresse 1", "address1", f.text(200), True, "obligatoire"),
    Column("Adresse 2", "address2", f.text(200)),
    Column("Code postal", "postal_code", f.postal_code, True, "obligatoire, 5 chiffres"),
    Column("Ville", "town", f.text(100, upper=True), True, "obligatoire"),
    Column("Email", "email", f.email, rule="adresse e-mail valide : celle où partent les avis"),
    Column("AE par mail", "notice_by_email", f.yes_no(False), rule=f"{YES_NO} (vide : Non)"),
    Column("Chargé clientèle", "account_manager", f.text(120)),
    Column("Email chargé clientèle", "account_manager_email", f.email, rule="adresse e-mail valide"),
    Column("Statut", "status", f.status_letter, rule="C, D ou P (filtre d'impression)"),
    Column("Sans Pollicitation", "no_solicitation", f.yes_no(False), rule=f"{YES_NO} (vide : Non)"),
))
CONTRACTS = Kind("contracts", Contract, (
    Column("N° de contrat", "number", f.text(40), True, "obligatoire, unique ; clé de mise à jour"),
    Column("Dossier", "client_number", f.text(20), True, "obligatoire : dossier d'un client déjà enregistré"),
    Column("Entité juridique", "entity_code", f.text(20, upper=True), True, "obligatoire : code d'une entité"),
    Column("Compagnie", "insurer", f.text(120), True, "obligatoire"),
    Column("Catégorie", "category", f.text(120), True, "obligatoire (Multirisques habitation…)"),
    Column("Observations", "observations", f.text(2000)),
    Column("Tacite reconduction", "tacit_renewal", f.yes_no(True), rule=f"{YES_NO} (vide : Oui)"),
    Column("Préavis de résiliation (mois)", "notice_period_months", f.whole(0, 12), rule="0 à 12 (vide : 2)"),
))
RECEIPTS = Kind("receipts", Receipt, (
    Column("N° de quittance", "number", f.text(40), True, "obligatoire, unique ; clé de mise à jour"),
    Column("N° de contrat", "contract_number", f.text(40), True, "obligatoire : contrat déjà enregistré"),
    Column("Période du", "period_start", f.day, True, "obligatoire, jj/mm/aaaa"),
    Column("Période au", "period_end", f.day, True, "obligatoire, jj/mm/aaaa, après le début"),
    Column("Date d'effet", "effect_date", f.day, rule="jj/mm/aaaa (vide : début de période)"),
    Column("Date de saisie", "entry_date", f.day, rule="jj/mm/aaaa (vide : aujourd'hui)"),
    Column("Mois de débit", "debit_month", f.month, rule="mm/aaaa (vide : mois de la date d'effet)"),
    Column("Encaissement", "collection", f.choice(COLLECTIONS), True, "obligatoire : Confié ou Direct"),
    Column("Terme ou comptant", "receipt_type", f.choice(RECEIPT_TYPES), True, "obligatoire : Terme ou Comptant"),
    Column("Prime HT", "premium_ht", f.amount, True, "obligatoire, en euros (négatif pour une ristourne)"),
    Column("Taxes", "taxes", f.amount, rule="en euros (vide : 0)"),
    Column("Frais", "fees", f.amount, rule="en euros (vide : 0)"),
    Column("Prime TTC", "total_ttc", f.amount, rule="Prime HT + Taxes + Frais (vide : calculée)"),
    Column("Date d'édition", "edition_date", f.day, rule="jj/mm/aaaa ; vide : inchangée"),
    # Optional trailing columns (a file made with the former model, without them, still imports): what the run's
    # «Acomptes» and «Type d'édition» options read.
    Column("Nature", "kind", f.choice(RECEIPT_KINDS),
           rule="Quittance, Acompte affecté, Acompte libre ou Appel d'acomptes (vide : Quittance)"),
    Column("Reste dû", "outstanding", f.amount,
           rule="en euros, ce que le client doit encore (vide : 0) ; une quittance due avant un acompte affecté "
                "et pas soldée met le contrat « en arriéré »"),
    Column("Pollicitation", "is_proposal", f.yes_no(False), rule=f"{YES_NO} (vide : Non) : une proposition"),
    Column("Avance cabinet", "broker_advance", f.yes_no(False),
           rule=f"{YES_NO} (vide : Non) : prime avancée par le cabinet"),
), optional_tail=4)
KINDS = {kind.name: kind for kind in (CLIENTS, CONTRACTS, RECEIPTS)}


Position = Callable[[int], str]  # how a report names an item: "la ligne 5" (Excel), "l'élément 3" (API)


def api_position(index: int) -> str:
    return f"l'élément {index + 1}"


def parse_batch(kind: Kind, items: Sequence[dict[str, Any]], position: Position = api_position
                ) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every value of every item through its parser; required values and keys repeated in the batch checked."""
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        record: dict[str, Any] = {}
        for column in kind.columns:
            raw = item.get(column.field)
            try:
                record[column.field] = column.parse(raw)
            except ValueError as exc:
                problems.append(Problem(index, column.field, str(exc)))
                record[column.field] = None
                continue
            if record[column.field] is None and column.required:
                problems.append(Problem(index, column.field, "valeur obligatoire"))
        key = record.get(kind.key)
        if key is not None and key in first:
            problems.append(Problem(index, kind.key, f"« {key} » en double : déjà dans {position(first[key])}"))
        elif key is not None:
            first[key] = index
        records.append(record)
    return records, problems


def _ids(session: Session, model: type[Any], organisation_id: int, numbers: set[str], column: str = "number"
         ) -> dict[str, int]:
    if not numbers:
        return {}
    attr = getattr(model, column)
    stmt = scoped(model, organisation_id).with_only_columns(attr, model.id).where(attr.in_(numbers))
    return {number: pk for number, pk in session.execute(stmt)}


def _resolve_contracts(session: Session, organisation_id: int, records: list[dict[str, Any]],
                       problems: list[Problem]) -> None:
    clients = _ids(session, Client, organisation_id, {r["client_number"] for r in records if r["client_number"]})
    entities = _ids(session, LegalEntity, organisation_id, {r["entity_code"] for r in records if r["entity_code"]},
                    "code")
    for index, record in enumerate(records):
        client_number, entity_code = record.pop("client_number"), record.pop("entity_code")
        if client_number and client_number not in clients:
            problems.append(Problem(index, "client_number", f"aucun client de dossier « {client_number} » : "
                                                            "importez d'abord le client"))
        if entity_code and entity_code not in entities:
            problems.append(Problem(index, "entity_code", f"aucune entité juridique de code « {entity_code} »"))
        record["client_id"], record["legal_entity_id"] = clients.get(client_number), entities.get(entity_code)
        if record["notice_period_months"] is None:
            record["notice_period_months"] = 2


def _money(value: Decimal) -> str:
    return f"{value:,.2f}".replace(",", " ").replace(".", ",")


def _resolve_receipts(session: Session, organisation_id: int, records: list[dict[str, Any]],
                      problems: list[Problem], today: date) -> None:
    contracts = _ids(session, Contract, organisation_id,
                     {r["contract_number"] for r in records if r["contract_number"]})
    numbers = {r["number"] for r in records if r["number"]}
    edited = {r.number: r for r in session.scalars(scoped(Receipt, organisation_id).where(
        Receipt.number.in_(numbers), Receipt.edition_date.is_not(None)))} if numbers else {}
    for index, record in enumerate(records):
        contract_number = record.pop("contract_number")
        if contract_number and contract_number not in contracts:
            problems.append(Problem(index, "contract_number", f"aucun contrat n° « {contract_number} » : "
                                                              "importez d'abord le contrat"))
        record["contract_id"] = contracts.get(contract_number)
        start, end = record["period_start"], record["period_end"]
        if start and end and end < start:
            problems.append(Problem(index, "period_end", f"la fin de période ({end:%d/%m/%Y}) précède son début "
                                                         f"({start:%d/%m/%Y})"))
        record["effect_date"] = record["effect_date"] or start
        record["entry_date"] = record["entry_date"] or today
        if record["debit_month"] is None and record["effect_date"]:
            record["debit_month"] = record["effect_date"].replace(day=1)
        record["kind"] = record["kind"] or "quittance"
        record["outstanding"] = record["outstanding"] if record["outstanding"] is not None else Decimal("0.00")
        record["taxes"] = record["taxes"] if record["taxes"] is not None else Decimal("0.00")
        record["fees"] = record["fees"] if record["fees"] is not None else Decimal("0.00")
        if record["premium_ht"] is not None:
            total = record["premium_ht"] + record["taxes"] + record["fees"]
            if record["total_ttc"] is not None and record["total_ttc"] != total:
                problems.append(Problem(index, "total_ttc", f"Prime TTC {_money(record['total_ttc'])} différente de "
                                                            f"Prime HT + Taxes + Frais = {_money(total)}"))
            record["total_ttc"] = total
        if record["outstanding"] < 0:
            problems.append(Problem(index, "outstanding", f"reste dû négatif ({_money(record['outstanding'])}) : "
                                                          "0 pour une quittance soldée"))
        elif record["total_ttc"] is not None and record["outstanding"] > max(record["total_ttc"], Decimal("0")):
            problems.append(Problem(index, "outstanding", f"reste dû {_money(record['outstanding'])} supérieur à la "
                                                          f"Prime TTC {_money(record['total_ttc'])}"))
        if (done := edited.get(record["number"])) is not None and _changes_notice(done, record):
            problems.append(Problem(index, "number", f"quittance déjà éditée le {done.edition_date:%d/%m/%Y} : sa "
                                                     "période, ses montants, sa nature et son contrat ne changent "
                                                     "plus ; annulez-la et créez-en une nouvelle"))


def _changes_notice(receipt: Receipt, record: dict[str, Any]) -> bool:
    """Would the new values change what an edited notice says?"""
    watched = ("contract_id", "period_start", "period_end", "effect_date", "premium_ht", "taxes", "fees",
               "total_ttc", "kind", "is_proposal")
    return any(getattr(receipt, name) != record[name] for name in watched)


def check_batch(session: Session, *, organisation_id: int, kind: Kind, items: Sequence[dict[str, Any]],
                today: date, position: Position = api_position) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The rows to write, and every problem found (sorted by position); write only when there is none."""
    records, problems = parse_batch(kind, items, position)
    if kind is CONTRACTS:
        _resolve_contracts(session, organisation_id, records, problems)
    elif kind is RECEIPTS:
        _resolve_receipts(session, organisation_id, records, problems, today)
    order = {c.field: i for i, c in enumerate(kind.columns)}
    return records, sorted(problems, key=lambda p: (p.index, order.get(p.field or "", 99)))


def write_batch(session: Session, *, organisation_id: int, kind: Kind, records: list[dict[str, Any]]) -> SaveReport:
    """Insert or update by (organisation, number), in slices; the caller's transaction makes it all-or-nothing."""
    model = kind.model
    keys = [r[kind.key] for r in records]
    existing: set[str] = set()
    for start in range(0, len(keys), MAX_BATCH):
        existing |= set(_ids(session, model, organisation_id, set(keys[start:start + MAX_BATCH])))
    stmt = insert(model)
    updates: dict[str, Any] = {name: stmt.excluded[name] for name in records[0] if name != kind.key}
    if kind is RECEIPTS:  # an edition date is only ever set, never cleared, by a load
        updates["edition_date"] = func.coalesce(stmt.excluded.edition_date, Receipt.edition_date)
    updates["updated_at"] = func.now()
    stmt = stmt.on_conflict_do_update(index_elements=["organisation_id", kind.key], set_=updates)
    for start in range(0, len(records), MAX_BATCH):
        session.execute(stmt, [{"organisation_id": organisation_id, **r} for r in records[start:start + MAX_BATCH]])
    session.expire_all()  # loaded rows would be stale after the bulk statement
    return SaveReport(created=len(set(keys) - existing), updated=len(existing))


def save_batch(session: Session, *, organisation_id: int, kind: Kind, items: Sequence[dict[str, Any]],
               today: date) -> SaveReport | list[Problem]:
    """Check then write a batch; the problems (and nothing written) if any item is wrong."""
    records, problems = check_batch(session, organisation_id=organisation_id, kind=kind, items=items, today=today)
    if problems:
        return problems
    if not records:
        return SaveReport(0, 0)
    return write_batch(session, organisation_id=organisation_id, kind=kind, records=records)


def counts(session: Session, *, organisation_id: int) -> dict[str, int]:
    """How many entities, clients, contracts and receipts the organisation has (home page)."""
    result = {}
    for name, model in (("entities", LegalEntity), ("clients", Client), ("contracts", Contract),
                        ("receipts", Receipt)):
        result[name] = session.scalar(select(func.count()).select_from(model)
                                      .where(model.organisation_id == organisation_id)) or 0
    return result
