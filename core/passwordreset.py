"""«Mot de passe oublié ?»: a single-use, expiring, signed link by mail, then a new password.

A request is recorded whether the address is known or not (the rate limits count it) and gets the same answer;
only an active user's address gets a mail: an outbox row and the start of the one-off mail workflow, in the
request's transaction (`core.signals`). The link is an action link (`core.links`, purpose `auth.password_reset`):
signed, expiring after PASSWORD_RESET_MINUTES, used once (`core.used_action_links`), and bound to the password it
replaces, so that every older link dies with a reset.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from jinja2 import Environment
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core import limits, links, outbox
from core.db import utcnow
from core.maillayout import mail_environment
from core.models import Organisation, PasswordResetRequest, User
from core.security import hash_password
from core.settings import Settings
from core.signals import queue_start
from core.temporal import SINGLE_MAIL, start_spec

PURPOSE = "auth.password_reset"
PATH = "/mot-de-passe/nouveau"
WINDOW = timedelta(hours=1)
KEEP = timedelta(days=1)  # requests older than this count for nothing and are purged
MIN_LENGTH, MAX_LENGTH = 10, 128

EXPIRED = "Ce lien a expiré. Demandez-en un nouveau depuis « Mot de passe oublié ? »."
USED = "Ce lien a déjà servi : votre mot de passe a été changé. Demandez-en un nouveau si besoin."
INVALID = "Ce lien n'existe pas ou n'est plus valable. Demandez-en un nouveau depuis « Mot de passe oublié ? »."


class ResetRefused(Exception):
    """The link cannot set a password (expired, used, unknown, or the password changed since): `message` says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class ResetLink:
    link: links.ActionLink
    user: User


def request_reset(session: Session, settings: Settings, *, email: str, client: str, base_url: str,
                  now: datetime | None = None) -> None:
    """Record a request for `email` from `client`; mail a link if it is an active user's address.

    Raises `limits.RateLimited` past PASSWORD_RESET_PER_ADDRESS (or _PER_CLIENT) requests in an hour, whoever the
    address belongs to, so that the limit tells nothing about it either."""
    email, client = email.strip().lower()[:320], client[:100]
    now = now or utcnow()
    # One request of an address at a time: two concurrent ones cannot both pass the limit.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('password-reset'), hashtext(:email))"),
                    {"email": email})
    session.execute(delete(PasswordResetRequest).where(PasswordResetRequest.email == email,
                                                       PasswordResetRequest.requested_at < now - KEEP))
    since = now - WINDOW
    by_address = _count(session, PasswordResetRequest.email == email, since)
    by_client = _count(session, PasswordResetRequest.client == client, since)
    if by_address >= settings.password_reset_per_address or by_client >= settings.password_reset_per_client:
        raise limits.RateLimited("Trop de demandes de réinitialisation pour cette adresse ou depuis ce poste : "
                                 "réessayez dans une heure.")
    user = session.scalars(select(User).where(User.email == email, User.is_active.is_(True))).first()
    row = PasswordResetRequest(email=email, client=client, user_id=user.id if user else None, requested_at=now)
    session.add(row)
    session.flush()
    if user is not None:
        _mail_link(session, settings, user, request_id=row.id, base_url=base_url, now=now)


def _count(session: Session, where: object, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(PasswordResetRequest)
                          .where(where, PasswordResetRequest.requested_at >= since)) or 0  # type: ignore[arg-type]


def _fingerprint(settings: Settings, password_hash: str) -> str:
    """Binds a link to the password it replaces (a keyed digest: the hash itself never leaves the database)."""
    return hmac.new(settings.secret_key.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:16]


@lru_cache
def _mail_templates() -> Environment:
    return mail_environment()


def _mail_link(session: Session, settings: Settings, user: User, *, request_id: int, base_url: str,
               now: datetime) -> None:
    minutes = settings.password_reset_minutes
    url = links.make_url(base_url, PATH, PURPOSE, str(user.id), max_age_seconds=minutes * 60,
                         data={"p": _fingerprint(settings, user.password_hash)}, now=now.timestamp())
    subject = "Relais : choisissez un nouveau mot de passe"
    body = (f"Bonjour {user.full_name},\n\nVous avez demandé à changer le mot de passe de votre compte Relais "
            f"({user.email}). Choisissez-en un nouveau en ouvrant ce lien, valable {minutes} minutes et une seule "
            f"fois :\n{url}\n\nSi vous n'êtes pas à l'origine de cette demande, ignorez ce message : votre mot de "
            f"passe reste inchangé.\n")
    html = _mail_templates().get_template("mail/password_reset.html").render(
        title=subject, preheader=f"Lien valable {minutes} minutes", footer="Relais", user=user, url=url,
        minutes=minutes)
    key = f"password-reset-{request_id}"
    outbox_id = outbox.enqueue(session, settings=settings, organisation_id=user.organisation_id, key=key,
                               to=[user.email], subject=subject, text=body, html=html)
    organisation = session.get(Organisation, user.organisation_id)
    queue_start(session, organisation_id=user.organisation_id, spec=start_spec(
        key, SINGLE_MAIL, {"outbox_id": outbox_id, "mail_task_queue": settings.mail_task_queue},
        task_queue=settings.task_queue, summary=f"Mot de passe oublié : lien pour {user.email}",
        RelaisOrganisation=organisation.slug if organisation else None, RelaisDomain="auth",
        RelaisPerson=user.email))


def check_link(session: Session, settings: Settings, token: str) -> ResetLink:
    """The link's user, if the link may still set a password. Changes nothing (safe for GET)."""
    try:
        link = links.read_token(token, PURPOSE)
    except links.LinkExpired as exc:
        raise ResetRefused(EXPIRED, 410) from exc
    except links.LinkError as exc:
        raise ResetRefused(INVALID, 404) from exc
    if links.is_used(session, link):
        raise ResetRefused(USED, 409)
    user = session.get(User, int(link.subject)) if link.subject.isdigit() else None
    if user is None or not user.is_active:
        raise ResetRefused(INVALID, 404)
    if not hmac.compare_digest(str(link.data.get("p", "")), _fingerprint(settings, user.password_hash)):
        raise ResetRefused(USED, 409)  # the password changed since this link was sent
    return ResetLink(link, user)


def password_problem(password: str, confirm: str) -> str | None:
    """What is wrong with a new password, in French, or None."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit faire au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit faire au plus {MAX_LENGTH} caractères."
    if password != confirm:
        return "Les deux saisies du mot de passe ne sont pas identiques."
    return None


def reset_password(session: Session, settings: Settings, *, token: str, password: str) -> User:
    """Check the link, use it up and set the new password, in the caller's transaction (commit them together)."""
    checked = check_link(session, settings, token)
    try:
        links.consume(session, token, PURPOSE)
    except links.LinkAlreadyUsed as exc:  # a concurrent POST won the race
        raise ResetRefused(USED, 409) from exc
    user = session.get(User, checked.user.id, with_for_update=True)
    assert user is not None
    user.password_hash = hash_password(password)
    return user
