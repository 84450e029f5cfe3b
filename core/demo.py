"""Idempotent demo data: each service declares its own (`ServiceSpec.demo`); these are the pieces they share."""

import hashlib
import importlib
import unicodedata
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import session_scope
from core.models import ApiKey, Organisation, User
from core.platform import DemoLogin, ServiceSpec
from core.security import hash_password
from core.settings import get_settings

DEMO_PASSWORD = "relais-demo"


def upsert_organisations(session: Session, organisations: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """(slug, name, kind) rows, kept as they are when present; returns every organisation's id by slug."""
    for slug, name, kind in organisations:
        session.execute(insert(Organisation).values(slug=slug, name=name, kind=kind)
                        .on_conflict_do_nothing(index_elements=["slug"]))
    return {slug: oid for slug, oid in session.execute(select(Organisation.slug, Organisation.id))}


def upsert_users(session: Session, orgs: dict[str, int], users: Sequence[DemoLogin]) -> None:
    """Demo logins with the demo password (hashed once, and only for the missing ones)."""
    existing = set(session.scalars(select(User.email)))
    missing = [u for u in users if u[0] not in existing]
    password_hash = hash_password(DEMO_PASSWORD) if missing else ""
    for email, full_name, slug, role in missing:
        session.add(User(email=email, full_name=full_name, organisation_id=orgs[slug], role=role,
                         password_hash=password_hash))
    session.flush()


def upsert_api_keys(session: Session, orgs: dict[str, int], keys: dict[str, str]) -> None:
    """Fixed, dev-only partner keys (`rk_<prefix>_<secret>`) so the APIs can be tried at once."""
    for slug, raw in keys.items():
        prefix, secret = raw.split("_")[1], raw.split("_", 2)[2]
        session.execute(insert(ApiKey).values(
            organisation_id=orgs[slug], name="Clé de démonstration", prefix=prefix,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        ).on_conflict_do_nothing(index_elements=["prefix"]))


def ascii_address(address: str) -> str:
    """"Léa.André" → "lea.andre": demo addresses stay plain ASCII, as most mail systems expect."""
    return unicodedata.normalize("NFKD", address).encode("ascii", "ignore").decode().lower().replace(" ", "-")


def import_models(services: Sequence[ServiceSpec]) -> None:
    """Import every service's models so Base.metadata knows all tables (Alembic, tests)."""
    importlib.import_module("core.models")
    for spec in services:
        if spec.models:
            importlib.import_module(spec.models)


def load_demo(services: Sequence[ServiceSpec]) -> None:
    """Every service's demo data, in one transaction; never in production."""
    if get_settings().environment == "prod":
        raise SystemExit("Les données de démonstration ne se chargent pas en production.")
    import_models(services)
    with session_scope() as session:
        for spec in services:
            if spec.demo is not None:
                spec.demo(session)
