"""Clients, contracts and receipts as the screens and the API read them: searched, filtered, paginated, scoped."""

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped
from core.ui import Page, paginate
from services.notices.models import RECEIPT_KINDS, Client, Contract, LegalEntity, NoticeDocument, Receipt

PER_PAGE = 50
# Folded in SQL too; upper case listed as well because lower() leaves accented letters alone under the C locale.
ACCENTED, PLAIN = "àâäáãéèêëíìîïóòôöõúùûüçñÿÀÂÄÁÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÇÑŸ", "aaaaaeeeeiiiiooooouuuucny" * 2


@dataclass(frozen=True)
class ClientFilters:
    q: str = ""
    status: str = ""  # C, D, P
    by_email: str = ""  # "oui" | "non": «AE par mail»
    no_email: bool = False  # only the clients without an «Email»


@dataclass(frozen=True)
class ReceiptFilters:
    q: str = ""
    entity_id: int | None = None
    collection: str = ""  # confie | direct
    receipt_type: str = ""  # terme | comptant
    kind: str = ""  # «Nature»: a key of RECEIPT_KINDS
    effect_from: date | None = None
    effect_to: date | None = None
    edited: str = ""  # "oui" | "non"
    client_id: int | None = None


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def matches(words: str, columns: Iterable[Any]) -> ColumnElement[bool]:
    """Every word found in one of the columns, ignoring case and accents ("helene" finds "Hélène")."""
    columns = list(columns)
    clauses = []
    for word in _fold(words).split():
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*(func.translate(func.lower(c), ACCENTED, PLAIN).like(pattern, escape="\\")
                             for c in columns)))
    return and_(*clauses)


def clients_stmt(organisation_id: int, filters: ClientFilters) -> Select[Any]:
    stmt = scoped(Client, organisation_id)
    if filters.q.strip():
        stmt = stmt.where(matches(filters.q, (Client.number, Client.last_name, Client.first_name, Client.email,
                                              Client.town)))
    if filters.status in ("C", "D", "P"):
        stmt = stmt.where(Client.status == filters.status)
    if filters.by_email in ("oui", "non"):
        stmt = stmt.where(Client.notice_by_email.is_(filters.by_email == "oui"))
    if filters.no_email:
        stmt = stmt.where(Client.email.is_(None))
    return stmt.order_by(Client.last_name, Client.first_name, Client.id)


def search_clients(session: Session, *, organisation_id: int, filters: ClientFilters, page: int = 1,
                   per_page: int = PER_PAGE) -> Page[Client]:
    """The clients matching the search words (dossier, nom, prénom, e-mail, ville) and the filters."""
    return paginate(session, clients_stmt(organisation_id, filters), page=page, per_page=per_page)


def get_client(session: Session, *, organisation_id: int, client_id: int) -> Client | None:
    """One client of the organisation, or None."""
    return get_scoped(session, Client, client_id, organisation_id)


def contracts_stmt(organisation_id: int, *, q: str = "", entity_id: int | None = None,
                   client_id: int | None = None) -> Select[Any]:
    """(contract, client, entity) rows."""
    stmt: Select[Any] = (scoped(Contract, organisation_id).add_columns(Client, LegalEntity)
                         .join(Client, Client.id == Contract.client_id)
                         .join(LegalEntity, LegalEntity.id == Contract.legal_entity_id))
    if q.strip():
        stmt = stmt.where(matches(q, (Contract.number, Contract.insurer, Contract.category, Client.number,
                                      Client.last_name)))
    if entity_id:
        stmt = stmt.where(Contract.legal_entity_id == entity_id)
    if client_id:
        stmt = stmt.where(Contract.client_id == client_id)
    return stmt.order_by(Contract.number, Contract.id)


def search_contracts(session: Session, *, organisation_id: int, q: str = "", entity_id: int | None = None,
                     page: int = 1, per_page: int = PER_PAGE) -> Page[Any]:
    """(contract, client, entity) rows matching n° de contrat, compagnie, catégorie, dossier or nom."""
    return paginate(session, contracts_stmt(organisation_id, q=q, entity_id=entity_id), page=page,
                    per_page=per_page)


def get_contract(session: Session, *, organisation_id: int, contract_id: int) -> Contract | None:
    return get_scoped(session, Contract, contract_id, organisation_id)


def receipts_stmt(organisation_id: int, filters: ReceiptFilters) -> Select[Any]:
    """(receipt, contract, client) rows, by date d'effet then number."""
    stmt: Select[Any] = (scoped(Receipt, organisation_id).add_columns(Contract, Client)
                         .join(Contract, Contract.id == Receipt.contract_id)
                         .join(Client, Client.id == Contract.client_id))
    if filters.q.strip():
        stmt = stmt.where(matches(filters.q, (Receipt.number, Contract.number, Client.number, Client.last_name)))
    if filters.entity_id:
        stmt = stmt.where(Contract.legal_entity_id == filters.entity_id)
    if filters.collection in ("confie", "direct"):
        stmt = stmt.where(Receipt.collection == filters.collection)
    if filters.receipt_type in ("terme", "comptant"):
        stmt = stmt.where(Receipt.receipt_type == filters.receipt_type)
    if filters.kind in RECEIPT_KINDS:
        stmt = stmt.where(Receipt.kind == filters.kind)
    if filters.effect_from:
        stmt = stmt.where(Receipt.effect_date >= filters.effect_from)
    if filters.effect_to:
        stmt = stmt.where(Receipt.effect_date <= filters.effect_to)
    if filters.edited in ("oui", "non"):
        edited = Receipt.edition_date.is_not(None)
        stmt = stmt.where(edited if filters.edited == "oui" else ~edited)
    if filters.client_id:
        stmt = stmt.where(Contract.client_id == filters.client_id)
    return stmt.order_by(Receipt.effect_date, Receipt.number, Receipt.id)


def search_receipts(session: Session, *, organisation_id: int, filters: ReceiptFilters, page: int = 1,
                    per_page: int = PER_PAGE) -> Page[Any]:
    """(receipt, contract, client) rows matching the filters of the «Quittances» list."""
    return paginate(session, receipts_stmt(organisation_id, filters), page=page, per_page=per_page)


def get_receipt(session: Session, *, organisation_id: int, receipt_id: int) -> Receipt | None:
    return get_scoped(session, Receipt, receipt_id, organisation_id)


def client_contracts(session: Session, *, organisation_id: int, client_id: int) -> list[Any]:
    """(contract, client, entity) rows of one client."""
    return list(session.execute(contracts_stmt(organisation_id, client_id=client_id)).all())


def client_receipts(session: Session, *, organisation_id: int, client_id: int, limit: int = 100) -> list[Any]:
    """(receipt, contract, client) rows of one client, latest effect date first."""
    stmt = receipts_stmt(organisation_id, ReceiptFilters(client_id=client_id)).order_by(None)
    return list(session.execute(stmt.order_by(Receipt.effect_date.desc(), Receipt.id.desc()).limit(limit)).all())


def client_notices(session: Session, *, organisation_id: int, client_id: int) -> list[Any]:
    """The notices made for a client, newest first: (document id, entity name, n°, created_at, size, sha256)."""
    stmt = (select(NoticeDocument.id, LegalEntity.name, NoticeDocument.notice_number, NoticeDocument.created_at,
                   NoticeDocument.size, NoticeDocument.sha256)
            .join(LegalEntity, LegalEntity.id == NoticeDocument.legal_entity_id)
            .where(NoticeDocument.organisation_id == organisation_id, NoticeDocument.client_id == client_id)
            .order_by(NoticeDocument.created_at.desc(), NoticeDocument.id.desc()))
    return list(session.execute(stmt).all())
