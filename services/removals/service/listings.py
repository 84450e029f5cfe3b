"""The lists of the seed: "Liste des demandes des déposes" (requester), "Gérer les déposes" (both), exports."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select
from sqlalchemy.orm import Session

from core.db import scoped
from core.models import Organisation, User
from core.ui import Page, paginate
from services.removals.models import Account, Mandate, RemovalRequest, TrackedVehicle
from services.removals.service import process
from services.removals.service.queries import MandateRow, addressed_to, with_details
from services.removals.service.rules import STATUS_LABELS

PER_PAGE = 50
EXPORT_HEADERS = ["N° demande", "Marque", "Modèle", "VIN", "N° Abonnement", "Code distributeur",
                  "Nom du distributeur", "Adresse email", "Lieu de dépose", "Date souhaitée", "Statut",
                  "Motif du refus",
                  "Date de dépose", "7 derniers chiffres du boîtier", "Nom du technicien", "Commentaires",
                  "Date de création de la demande", "Mis à jour le"]


@dataclass
class RequestSummary:
    request: RemovalRequest
    creator: str
    total: int
    accepted: int
    done: int


@dataclass
class UntoldDeposer:
    """A deposer of a request whose mail the server has not accepted: its vehicles are still Nouvelle."""

    name: str
    code: str
    vehicles: int
    state: str  # "pending" (being sent, or retried) | "ko" (refused) | "" (not written yet)
    reply: str


def untold_deposers(session: Session, *, organisation_id: int, request_id: int) -> list[UntoldDeposer]:
    """The request's deposers still to be told (mandates Nouvelle), with where their mail stands."""
    rows = session.execute(
        select(Organisation.name, Account.code, Mandate.deposer_id, func.count())
        .join(Organisation, Organisation.id == Mandate.deposer_id)
        .join(Account, Account.organisation_id == Mandate.deposer_id)
        .where(Mandate.organisation_id == organisation_id, Mandate.request_id == request_id,
               Mandate.status == "nouvelle")
        .group_by(Organisation.name, Account.code, Mandate.deposer_id).order_by(Organisation.name)).all()
    if not rows:
        return []
    states = process.notification_states(session, request_id=request_id)
    return [UntoldDeposer(name, code, count, *states.get(deposer_id, ("", "")))
            for name, code, deposer_id, count in rows]


def _like(q: str) -> str:
    return "%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def requests_page(session: Session, *, organisation_id: int, q: str = "", page: int = 1) -> Page[RequestSummary]:
    """The requester's requests, newest first, with "Total : n dont acceptées : a dont effectuées : e"."""
    counts = (select(Mandate.request_id, func.count().label("total"),
                     func.count().filter(Mandate.status == "acceptee").label("accepted"),
                     func.count().filter(Mandate.status == "effectuee").label("done"))
              .where(Mandate.organisation_id == organisation_id).group_by(Mandate.request_id).subquery())
    stmt: Select[Any] = (scoped(RemovalRequest, organisation_id)
                         .add_columns(User.full_name, counts.c.total, counts.c.accepted, counts.c.done)
                         .outerjoin(User, User.id == RemovalRequest.created_by_id)
                         .outerjoin(counts, counts.c.request_id == RemovalRequest.id)
                         .order_by(RemovalRequest.number.desc()))
    if q.strip():
        pattern = _like(q)
        stmt = stmt.where(or_(cast(RemovalRequest.number, String).like(pattern),
                              RemovalRequest.tracking_email.ilike(pattern), RemovalRequest.description.ilike(pattern),
                              User.full_name.ilike(pattern)))
    result = paginate(session, stmt, page=page, per_page=PER_PAGE)
    items = [RequestSummary(r, name or "-", total or 0, accepted or 0, done or 0)
             for r, name, total, accepted, done in result.items]
    return Page(items, result.page, result.per_page, result.total)


def _filtered(stmt: Select[Any], *, q: str, statut: str) -> Select[Any]:
    if statut in STATUS_LABELS:
        stmt = stmt.where(Mandate.status == statut)
    if q.strip():
        pattern = _like(q)
        stmt = stmt.where(or_(Mandate.vin.ilike(pattern), Mandate.lieu.ilike(pattern),
                              TrackedVehicle.subscription_no.ilike(pattern), TrackedVehicle.marque.ilike(pattern),
                              TrackedVehicle.modele.ilike(pattern)))
    return stmt


def _page_of_rows(session: Session, stmt: Select[Any], page: int) -> Page[MandateRow]:
    result = paginate(session, stmt, page=page, per_page=PER_PAGE)
    return Page([MandateRow(**r._mapping) for r in result.items], result.page, result.per_page, result.total)


def request_mandates(session: Session, *, organisation_id: int, request_id: int, q: str = "", statut: str = "",
                     page: int = 1) -> Page[MandateRow]:
    """The detail of one request: each vehicle and its status."""
    base = scoped(Mandate, organisation_id).where(Mandate.request_id == request_id)
    return _page_of_rows(session, _filtered(with_details(base), q=q, statut=statut), page)


def deposer_stmt(deposer_id: int, *, q: str = "", statut: str = "", requester_id: int | None = None) -> Select[Any]:
    """What is addressed to a deposer (MandateRow columns), newest requests first; «Demandeur client»: one
    requester's only."""
    base = addressed_to(deposer_id)
    if requester_id is not None:
        base = base.where(Mandate.organisation_id == requester_id)
    return _filtered(with_details(base), q=q, statut=statut)


def deposer_mandates(session: Session, *, deposer_id: int, q: str = "", statut: str = "",
                     requester_id: int | None = None, page: int = 1) -> Page[MandateRow]:
    """"Gérer les déposes" for a deposer."""
    return _page_of_rows(session, deposer_stmt(deposer_id, q=q, statut=statut, requester_id=requester_id), page)


def deposer_requesters(session: Session, *, deposer_id: int) -> list[tuple[int, str]]:
    """«Demandeur client»: the requesters whose requests reached the deposer, by name."""
    sub = addressed_to(deposer_id).with_only_columns(Mandate.organisation_id).distinct().subquery()
    return [(i, name) for i, name in session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(select(sub.c.organisation_id)))
        .order_by(Organisation.name))]


def has_received(session: Session, *, deposer_id: int) -> bool:
    """Has any request reached the deposer (its menu «Gérer les demandes de déposes» shows from then on)?"""
    return session.scalar(addressed_to(deposer_id).with_only_columns(Mandate.id).limit(1)) is not None


def status_counts(session: Session, stmt: Select[Any]) -> dict[str, int]:
    sub = stmt.with_only_columns(Mandate.status).subquery()
    return {s: n for s, n in session.execute(select(sub.c.status, func.count()).group_by(sub.c.status))}


def export_rows(session: Session, *, organisation_id: int, request: RemovalRequest) -> list[list[object]]:
    base = scoped(Mandate, organisation_id).where(Mandate.request_id == request.id)
    return list(_export(session, with_details(base)))


def _export(session: Session, stmt: Select[Any]) -> Iterator[list[object]]:
    for r in session.execute(stmt):
        row = MandateRow(**r._mapping)
        removal: datetime | None = row.removal_date
        yield [f"#{row.request_no}", row.marque, row.modele, row.vin, row.subscription_no, row.deposer_code,
               row.deposer_name, row.deposer_email or "", row.lieu, row.desired_date,
               STATUS_LABELS[row.status], row.reason or "", removal, row.box_digits or "",
               row.technician or "", row.comment or "", row.request_created_at, row.updated_at]


@dataclass(frozen=True)
class TrackingFilters:
    """The filters of «Suivi des déposes» (every mandate of the account)."""

    q: str = ""
    statut: str = ""
    deposer_id: int | None = None
    request_no: int | None = None
    desired_from: date | None = None
    desired_to: date | None = None


def tracking_stmt(organisation_id: int, filters: TrackingFilters) -> Select[Any]:
    """Every mandate of the requester, across its requests (MandateRow columns), newest requests first."""
    base = scoped(Mandate, organisation_id)
    if filters.deposer_id is not None:
        base = base.where(Mandate.deposer_id == filters.deposer_id)
    if filters.desired_from is not None:
        base = base.where(Mandate.desired_date >= filters.desired_from)
    if filters.desired_to is not None:
        base = base.where(Mandate.desired_date <= filters.desired_to)
    stmt = with_details(base)
    if filters.request_no is not None:
        stmt = stmt.where(RemovalRequest.number == filters.request_no)
    return _filtered(stmt, q=filters.q, statut=filters.statut)


def tracking_page(session: Session, *, organisation_id: int, filters: TrackingFilters,
                  page: int = 1) -> Page[MandateRow]:
    return _page_of_rows(session, tracking_stmt(organisation_id, filters), page)


def tracking_export(session: Session, *, organisation_id: int, filters: TrackingFilters) -> Iterator[list[object]]:
    """The export's rows, streamed (every mandate the filters keep)."""
    return _export(session, tracking_stmt(organisation_id, filters))


def requester_deposers(session: Session, *, organisation_id: int) -> list[tuple[int, str, str]]:
    """The deposers of the requester's requests (id, name, code), for the «Déposeur» filter."""
    used = select(Mandate.deposer_id).where(Mandate.organisation_id == organisation_id).distinct()
    return [(i, name, code) for i, name, code in session.execute(
        select(Organisation.id, Organisation.name, Account.code)
        .join(Account, Account.organisation_id == Organisation.id)
        .where(Organisation.id.in_(used)).order_by(Organisation.name))]


def location_rows(session: Session, *, organisation_id: int) -> list[list[object]]:
    """Vin and «Emplacement déclaré» of the requester's active vehicles: the import's file, ready to edit."""
    stmt = (scoped(TrackedVehicle, organisation_id)
            .with_only_columns(TrackedVehicle.vin, TrackedVehicle.declared_location)
            .where(TrackedVehicle.subscription_status == "active").order_by(TrackedVehicle.vin))
    return [[vin, location] for vin, location in session.execute(stmt)]


def vehicles_page(session: Session, *, organisation_id: int, q: str = "", page: int = 1) -> Page[TrackedVehicle]:
    """"Gérer les véhicules clients": the requester's equipped vehicles and their subscriptions."""
    stmt = scoped(TrackedVehicle, organisation_id)
    if q.strip():
        pattern = _like(q)
        stmt = stmt.where(or_(TrackedVehicle.vin.ilike(pattern), TrackedVehicle.subscription_no.ilike(pattern),
                              TrackedVehicle.marque.ilike(pattern), TrackedVehicle.modele.ilike(pattern),
                              TrackedVehicle.declared_location.ilike(pattern)))
    return paginate(session, stmt.order_by(TrackedVehicle.vin), page=page, per_page=PER_PAGE)
