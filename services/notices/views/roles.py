"""Who may see what: the screens are a broker's («cabinet de courtage»); viewers read, managers load the reference
data, administrators edit the legal entities (letterhead, numbering)."""

from datetime import date
from typing import Annotated

from fastapi import Depends, HTTPException, Path

from core.auth import CurrentUser, DbSession
from core.models import Organisation, User

BROKER_KIND = "broker"
# A record's id in a path: beyond PostgreSQL's bigint it is refused (422) instead of failing the query.
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _broker(user: CurrentUser, session: DbSession) -> User:
    organisation = session.get(Organisation, user.organisation_id)
    if organisation is None or organisation.kind != BROKER_KIND:
        raise HTTPException(403, "Ces pages sont réservées aux cabinets de courtage.")
    return user


def _manager(user: Annotated[User, Depends(_broker)]) -> User:
    if user.role not in ("manager", "admin"):
        raise HTTPException(403, "Votre rôle ne permet pas cette action.")
    return user


def _admin(user: Annotated[User, Depends(_broker)]) -> User:
    if user.role != "admin":
        raise HTTPException(403, "Seul un administrateur peut modifier les entités juridiques.")
    return user


Broker = Annotated[User, Depends(_broker)]
BrokerManager = Annotated[User, Depends(_manager)]
BrokerAdmin = Annotated[User, Depends(_admin)]


def int_or_none(value: str) -> int | None:
    """A filter's id from the query string ("" or junk: no filter)."""
    return int(value) if value.isdigit() and len(value) < 19 else None


def date_or_none(value: str) -> date | None:
    """A filter's date (aaaa-mm-jj, as <input type="date"> sends it); junk: no filter."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None
