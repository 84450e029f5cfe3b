"""Manager sessions and roles, partner API keys: the FastAPI dependencies every service uses."""

from collections.abc import Iterator
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.db import session_scope
from core.models import ApiKey, User
from core.security import verify_api_key


class LoginRequired(Exception):
    """Raised by `current_user` for a page; the app turns it into a redirect to /login."""


def db_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# scope="function": commit before the response leaves, so the page a redirect leads to sees the write.
DbSession = Annotated[Session, Depends(db_session, scope="function")]


def current_user(request: Request, session: DbSession) -> User:
    user_id = request.session.get("user_id")
    user = session.get(User, user_id) if user_id else None
    if user is None or not user.is_active:
        request.session.pop("user_id", None)
        raise LoginRequired
    structlog.contextvars.bind_contextvars(organisation_id=user.organisation_id, user_id=user.id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the user must have one of `roles` (admin always passes)."""

    def check(user: CurrentUser) -> User:
        if user.role != "admin" and user.role not in roles:
            raise HTTPException(403, "Votre rôle ne permet pas cette action.")
        return user

    return check


Manager = Annotated[User, Depends(require_role("manager"))]


# Declared as security schemes: the OpenAPI page gets its «Authorize» button, and the key is no parameter.
_API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="Clé d'API `rk_…` du partenaire")
_BEARER = HTTPBearer(auto_error=False, description="La même clé en `Authorization: Bearer rk_…`")


def partner_key(session: DbSession, x_api_key: Annotated[str | None, Security(_API_KEY_HEADER)] = None,
                bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None) -> ApiKey:
    """API key from `X-API-Key: rk_…` or `Authorization: Bearer rk_…`."""
    raw = x_api_key or (bearer.credentials if bearer else None)
    key = verify_api_key(session, raw) if raw else None
    if key is None:
        raise HTTPException(401, "Clé d'API absente ou invalide.", headers={"WWW-Authenticate": "Bearer"})
    structlog.contextvars.bind_contextvars(organisation_id=key.organisation_id, api_key=key.prefix)
    return key


PartnerKey = Annotated[ApiKey, Depends(partner_key)]
