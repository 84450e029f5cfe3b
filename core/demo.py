"""`python -m core.demo`: idempotent demo data (fictional French organisations, managers, drivers)."""

import hashlib
import random
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

PRENOMS = ["Camille", "Lucas", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Emma", "Jules", "Inès",
           "Arthur", "Sarah", "Nathan", "Zoé", "Théo", "Jade", "Raphaël", "Louise", "Tom", "Élodie", "Noé"]
NOMS = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
        "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
        "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Le Goff", "Castelli"]
CODES_POSTAUX = ["31000", "33000", "75011", "69003", "13008", "29200", "35000", "44000", "59000", "67000",
                 "20000", "20200", "97400", "97200", "06000", "34000", "64100", "21000", "87000", "97300"]


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


def _upsert_drivers(session: Session, orgs: dict[str, int]) -> None:
    from services.campaigns.models import Driver

    rng = random.Random(42)  # same demo data on every machine
    for slug, count in (("garonne", 300), ("armor", 60)):
        rows = []
        for n in range(1, count + 1):
            prenom, nom = rng.choice(PRENOMS), rng.choice(NOMS)
            has_email = n % 12 != 0  # some drivers have no e-mail, as in real fleets
            email = _ascii(f"{prenom}.{nom}.{n}@{slug}.example") if has_email else None
            rows.append({
                "organisation_id": orgs[slug], "matricule": f"{slug[:3].upper()}{n:05d}",
                "civilite": rng.choice(["M.", "Mme"]), "nom": nom, "prenom": prenom, "email": email,
                "code_postal": rng.choice(CODES_POSTAUX),
            })
        session.execute(insert(Driver).values(rows).on_conflict_do_nothing(
            index_elements=["organisation_id", "matricule"]))


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
        _upsert_drivers(session, orgs)


if __name__ == "__main__":
    load_demo()
