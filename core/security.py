"""Password hashing (argon2 through pwdlib) and partner API keys (random secret, SHA-256 stored)."""

import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import ApiKey, User

_hasher = PasswordHash.recommended()  # argon2id
# Verifying against this keeps the timing of "unknown e-mail" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("relais-dummy-password")

ROLES = ("admin", "manager", "viewer")
ROLE_LABELS = {"admin": "Administrateur", "manager": "Gestionnaire", "viewer": "Lecture seule"}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None (same cost either way)."""
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.is_active:
        _hasher.verify(password, _DUMMY_HASH)
        return None
    return user if _hasher.verify(password, user.password_hash) else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, *, organisation_id: int, name: str) -> tuple[ApiKey, str]:
    """Create a key; the clear value `rk_<prefix>_<secret>` is returned once and never stored."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(organisation_id=organisation_id, name=name, prefix=prefix, secret_hash=_digest(secret))
    session.add(key)
    session.flush()
    return key, f"rk_{prefix}_{secret}"


def verify_api_key(session: Session, raw: str) -> ApiKey | None:
    """The live key matching `raw`, or None for a malformed, unknown, revoked or wrong one."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "rk":
        return None
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == parts[1])).first()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _digest(parts[2])):
        return None
    session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow()))
    return key
