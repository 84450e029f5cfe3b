"""Who may see what: the organisation's kind decides (requester "tracker" or "deposer"); viewers only read."""

from typing import Annotated

from fastapi import Depends, HTTPException

from core.auth import CurrentUser, DbSession
from core.models import Organisation, User

REQUESTER_KIND, DEPOSER_KIND = "tracker", "deposer"


def organisation_kind(session: DbSession, user: User) -> str:
    organisation = session.get(Organisation, user.organisation_id)
    return organisation.kind if organisation else ""


def _requester(user: CurrentUser, session: DbSession) -> User:
    if organisation_kind(session, user) != REQUESTER_KIND:
        raise HTTPException(403, "Cette page est réservée aux demandeurs de déposes.")
    return user


def _requester_manager(user: Annotated[User, Depends(_requester)]) -> User:
    if user.role == "viewer":
        raise HTTPException(403, "Votre rôle ne permet pas cette action.")
    return user


def _deposer(user: CurrentUser, session: DbSession) -> User:
    if organisation_kind(session, user) != DEPOSER_KIND:
        raise HTTPException(403, "Cette page est réservée aux mandataires (déposeurs).")
    return user


def _deposer_agent(user: Annotated[User, Depends(_deposer)]) -> User:
    if user.role == "viewer":
        raise HTTPException(403, "Votre rôle ne permet pas cette action.")
    return user


Requester = Annotated[User, Depends(_requester)]
RequesterManager = Annotated[User, Depends(_requester_manager)]
Deposer = Annotated[User, Depends(_deposer)]
DeposerAgent = Annotated[User, Depends(_deposer_agent)]
