"""Read-model queries shared by the screens, the API, the links and the activities.

A requester reads its mandates through `core.db.scoped` (its organisation owns them); a deposer reads the
mandates addressed to it through `addressed_to`: the same one-place rule, on the deposer column.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from core.db import scoped
from core.models import Organisation
from services.removals.models import Account, Mandate, RemovalRequest, TrackedVehicle

PARIS = ZoneInfo("Europe/Paris")  # the dates users type and read are French local time

RequesterOrg, DeposerOrg = aliased(Organisation), aliased(Organisation)
RequesterAccount, DeposerAccount = aliased(Account), aliased(Account)


@dataclass(frozen=True)
class MandateRow:
    """A mandate with what every screen and mail shows about it (the seed's columns)."""

    id: int
    organisation_id: int
    deposer_id: int
    request_id: int
    request_no: int
    request_created_at: datetime
    tracking_email: str
    alert_emails: list[str]
    status: str
    vin: str
    marque: str
    modele: str
    subscription_no: str
    declared_location: str | None
    lieu: str | None
    desired_date: date | None
    comment: str | None
    reason: str | None
    removal_date: datetime | None
    box_digits: str | None
    technician: str | None
    workflow_id: str
    updated_at: datetime
    requester_name: str
    requester_slug: str
    requester_code: str | None
    deposer_name: str
    deposer_code: str
    deposer_email: str | None


COLUMNS: tuple[Any, ...] = (
    Mandate.id, Mandate.organisation_id, Mandate.deposer_id, Mandate.request_id,
    RemovalRequest.number.label("request_no"), RemovalRequest.created_at.label("request_created_at"),
    RemovalRequest.tracking_email, RemovalRequest.alert_emails, Mandate.status, Mandate.vin, TrackedVehicle.marque,
    TrackedVehicle.modele,
    TrackedVehicle.subscription_no, TrackedVehicle.declared_location, Mandate.lieu, Mandate.desired_date,
    Mandate.comment, Mandate.reason,
    Mandate.removal_date, Mandate.box_digits, Mandate.technician, Mandate.workflow_id, Mandate.updated_at,
    RequesterOrg.name.label("requester_name"), RequesterOrg.slug.label("requester_slug"),
    RequesterAccount.code.label("requester_code"), DeposerOrg.name.label("deposer_name"),
    DeposerAccount.code.label("deposer_code"), DeposerAccount.email.label("deposer_email"),
)


def addressed_to(deposer_id: int) -> Select[Mandate]:
    """The only way to select a deposer's mandates: never another deposer's, and only those it was told of (not
    Nouvelle, whose mail the server has not accepted yet, nor one cancelled before its mail was sent)."""
    return select(Mandate).where(Mandate.deposer_id == deposer_id, Mandate.status != "nouvelle",
                                 or_(Mandate.status != "annulee", Mandate.notified_at.is_not(None)))


def with_details(base: Select[Any]) -> Select[Any]:
    """`base` (scoped, addressed_to or by id) widened to the MandateRow columns, in the file's order."""
    return (base.with_only_columns(*COLUMNS)
            .join(RemovalRequest, RemovalRequest.id == Mandate.request_id)
            .join(TrackedVehicle, TrackedVehicle.id == Mandate.vehicle_id)
            .join(RequesterOrg, RequesterOrg.id == Mandate.organisation_id)
            .outerjoin(RequesterAccount, RequesterAccount.organisation_id == Mandate.organisation_id)
            .join(DeposerOrg, DeposerOrg.id == Mandate.deposer_id)
            .join(DeposerAccount, DeposerAccount.organisation_id == Mandate.deposer_id)
            .order_by(RemovalRequest.number.desc(), Mandate.line, Mandate.id))


def rows(session: Session, stmt: Select[Any], params: dict[str, Any] | None = None) -> list[MandateRow]:
    return [MandateRow(**r._mapping) for r in session.execute(stmt, params)]


# Built once: every action link and every recorded action reads one mandate (building the joins costs a millisecond).
_BY_ID = with_details(select(Mandate).where(Mandate.id == bindparam("mandate_id")))


def by_id(session: Session, mandate_id: int) -> MandateRow | None:
    """One mandate by id, unscoped: for action links, whose signed token is the credential."""
    found = rows(session, _BY_ID, {"mandate_id": mandate_id})
    return found[0] if found else None


def by_workflow_id(session: Session, workflow_id: str) -> MandateRow | None:
    found = rows(session, with_details(select(Mandate).where(Mandate.workflow_id == workflow_id)))
    return found[0] if found else None


def for_requester(session: Session, *, organisation_id: int, mandate_id: int) -> MandateRow | None:
    found = rows(session, with_details(scoped(Mandate, organisation_id).where(Mandate.id == mandate_id)))
    return found[0] if found else None


def for_deposer(session: Session, *, deposer_id: int, mandate_id: int) -> MandateRow | None:
    found = rows(session, with_details(addressed_to(deposer_id).where(Mandate.id == mandate_id)))
    return found[0] if found else None


def of_request(session: Session, request_id: int, *, deposer_id: int | None = None,
               statuses: tuple[str, ...] | None = None) -> list[MandateRow]:
    """A request's mandates (for one deposer, in some statuses): what a grouped mail lists."""
    stmt = select(Mandate).where(Mandate.request_id == request_id)
    if deposer_id is not None:
        stmt = stmt.where(Mandate.deposer_id == deposer_id)
    if statuses is not None:
        stmt = stmt.where(Mandate.status.in_(statuses))
    return rows(session, with_details(stmt))


def get_request(session: Session, *, organisation_id: int, number: int) -> RemovalRequest | None:
    stmt = scoped(RemovalRequest, organisation_id).where(RemovalRequest.number == number)
    return session.scalars(stmt).first()


def account(session: Session, organisation_id: int) -> Account | None:
    return session.get(Account, organisation_id)
