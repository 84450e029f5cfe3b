"""Action links for mail recipients: signed, expiring, purpose-bound and single-use.

The token carries its purpose (also used as the signing salt, so a token minted for one purpose
never verifies for another), a subject (what it acts on), an expiry and a random id. Using it
inserts that id into `core.used_action_links`; a second use finds the row and is refused.
"""

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import table
from core.models import UsedActionLink
from core.settings import get_settings


class LinkError(Exception):
    """Base of the refusals; `status` is the HTTP status the page answers with."""

    status = 400
    message = "Lien invalide."


class LinkInvalid(LinkError):
    status = 404
    message = "Ce lien n'existe pas."


class LinkExpired(LinkError):
    status = 410
    message = "Ce lien a expiré. Demandez à votre gestionnaire de vous en envoyer un nouveau."


class LinkAlreadyUsed(LinkError):
    status = 409
    message = "Ce lien a déjà été utilisé : l'action a déjà été enregistrée."


class ActionRefused(LinkError):
    """The link is valid but the action is no longer possible (e.g. the process has ended)."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ActionLink:
    jti: str
    purpose: str
    subject: str
    expires_at: int
    data: dict[str, Any]


def _serializer(purpose: str) -> URLSafeSerializer:
    return _cached_serializer(get_settings().secret_key, purpose)


@lru_cache(maxsize=64)
def _cached_serializer(secret: str, purpose: str) -> URLSafeSerializer:
    """Building the signer derives keys: done once per purpose, not once per link of a 5,000-line mailing."""
    return URLSafeSerializer(secret, salt=f"relais.action.{purpose}")


def make_token(purpose: str, subject: str, *, max_age_seconds: int | None = None,
               data: dict[str, Any] | None = None, now: float | None = None) -> str:
    settings = get_settings()
    age = max_age_seconds if max_age_seconds is not None else settings.action_link_max_age_days * 86400
    issued = now if now is not None else time.time()
    payload = {"j": secrets.token_urlsafe(12), "s": subject, "e": int(issued + age), "d": data or {}}
    return _serializer(purpose).dumps(payload)


def make_url(base_url: str, path: str, purpose: str, subject: str, **kwargs: Any) -> str:
    """Absolute link from the configured public base URL (never from a request's Host header)."""
    return f"{base_url.rstrip('/')}/{path.strip('/')}/{make_token(purpose, subject, **kwargs)}"


def read_token(token: str, purpose: str, *, now: float | None = None) -> ActionLink:
    """Decode and check signature, purpose and expiry. Changes nothing (safe for GET)."""
    try:
        payload = _serializer(purpose).loads(token)
    except BadSignature as exc:
        raise LinkInvalid from exc
    if not isinstance(payload, dict) or not {"j", "s", "e"} <= payload.keys():
        raise LinkInvalid
    link = ActionLink(payload["j"], purpose, payload["s"], int(payload["e"]), payload.get("d") or {})
    if (now if now is not None else time.time()) > link.expires_at:
        raise LinkExpired
    return link


def is_used(session: Session, link: ActionLink) -> bool:
    return session.scalar(select(UsedActionLink.jti).where(UsedActionLink.jti == link.jti)) is not None


_USED = table(UsedActionLink)
_MARK_USED = insert(_USED).on_conflict_do_nothing(index_elements=["jti"]).returning(_USED.c.jti)


def consume(session: Session, token: str, purpose: str) -> ActionLink:
    """Check the token and mark it used in the caller's transaction (commit it with the action).

    Two concurrent POSTs race on the primary key: exactly one insert wins.
    """
    link = read_token(token, purpose)
    inserted = session.execute(_MARK_USED, {"jti": link.jti, "purpose": purpose, "subject": link.subject}).first()
    if inserted is None:
        raise LinkAlreadyUsed
    return link
