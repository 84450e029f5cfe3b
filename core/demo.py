"""`python -m core.demo`: idempotent demo data (fictional French organisations, managers, drivers)."""

import hashlib
import unicodedata

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import session_scope
from core.models import ApiKey, Organisation, User
from core.registry import import_all_models
from core.security import hash_password
from core.settings import get_settings

DEMO_PASSWORD = "relais-demo"
ORGANISATIONS = [
    ("garonne", "Transports Garonne", "fleet"),
    ("armor", "Flotte Armor Services", "fleet"),
]
USERS = [
    ("gestionnaire@garonne.example", "Claire Dubois", "garonne", "manager"),
    ("admin@garonne.example", "Marc Lefèvre", "garonne", "admin"),
    ("lecture@garonne.example", "Inès Martin", "garonne", "viewer"),
    ("gestionnaire@armor.example", "Yann Le Gall", "armor", "manager"),
]
# Fixed, dev-only partner keys so the API can be tried at once (never loaded in prod).
API_KEYS = {"garonne": "rk_demogaronne_cle-de-demo-garonne", "armor": "rk_demoarmor_cle-de-demo-armor"}


def _upsert_organisations(session: Session) -> dict[str, int]:
    for slug, name, kind in ORGANISATIONS:
        session.execute(insert(Organisation).values(slug=slug, name=name, kind=kind)
                        .on_conflict_do_nothing(index_elements=["slug"]))
    return {slug: oid for slug, oid in session.execute(select(Organisation.slug, Organisation.id))}


def _upsert_users(session: Session, orgs: dict[str, int]) -> None:
    existing = set(session.scalars(select(User.email)))
    for email, full_name, slug, role in USERS:
        if email not in existing:
            session.add(User(email=email, full_name=full_name, organisation_id=orgs[slug], role=role,
                             password_hash=hash_password(DEMO_PASSWORD)))
    for slug, raw in API_KEYS.items():
        prefix, secret = raw.split("_")[1], raw.split("_", 2)[2]
        session.execute(insert(ApiKey).values(
            organisation_id=orgs[slug], name="Clé de démonstration", prefix=prefix,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        ).on_conflict_do_nothing(index_elements=["prefix"]))


def _ascii(address: str) -> str:
    """"Léa.André" → "lea.andre": demo addresses stay plain ASCII, as most mail systems expect."""
    return unicodedata.normalize("NFKD", address).encode("ascii", "ignore").decode().lower().replace(" ", "-")


def load_demo() -> None:
    if get_settings().environment == "prod":
        raise SystemExit("Les données de démonstration ne se chargent pas en production.")
    import_all_models()
    with session_scope() as session:
        orgs = _upsert_organisations(session)
        _upsert_users(session, orgs)
        from services.campaigns.demo import load_fleet_demo  # services import core, not the reverse, at load
        from services.campaigns.demo_communication import load_communication_demo

        load_fleet_demo(session, orgs)
        load_communication_demo(session, orgs)
        from services.removals.demo import load_removals_demo

        load_removals_demo(session)


if __name__ == "__main__":
    load_demo()
