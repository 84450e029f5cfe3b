"""Removals demo data: two requesters with equipped vehicles, five deposers (the seed's distributor codes),
their users (password "relais-demo") and a partner API key for TRAMOSA. Idempotent, the same on every machine."""

import random

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.demo import upsert_api_keys, upsert_organisations, upsert_users
from services.removals.models import Account, TrackedVehicle

# slug, name, kind, distributor code, notification e-mail (deposers), vehicles (requesters)
ORGANISATIONS = [
    ("locaflotte", "LocaFlotte SAS", "tracker", "JJ019", None, 200),
    ("azur-location", "Azur Location", "tracker", "KT019", None, 100),
    ("tramosa", "TRAMOSA", "deposer", "EK004", "depot@ek004.example", 0),
    ("walon-lauterbourg", "WALON LAUTERBOURG", "deposer", "JJ020", "depot@jj020.example", 0),
    ("walon-vitrolles", "WALON VITROLLES", "deposer", "JK020", "depot@jk020.example", 0),
    ("stva", "STVA", "deposer", "KT075", "depot@kt075.example", 0),
    ("btv", "BTV", "deposer", "LC004", "depot@lc004.example", 0),
]
USERS = [
    ("gestionnaire@locaflotte.example", "Stanislas Fifis", "locaflotte", "manager"),
    ("lecture@locaflotte.example", "Nina Roche", "locaflotte", "viewer"),
    ("gestionnaire@azur-location.example", "Paul Giordano", "azur-location", "manager"),
    ("depot@ek004.example", "Michaël Bourgery", "tramosa", "manager"),
    ("depot@jj020.example", "Alix Martin", "walon-lauterbourg", "manager"),
    ("depot@jk020.example", "Karim Benali", "walon-vitrolles", "manager"),
    ("depot@kt075.example", "Sophie Marchand", "stva", "manager"),
    ("depot@lc004.example", "Julien Perrin", "btv", "manager"),
]
API_KEYS = {"tramosa": "rk_demoek004_cle-de-demo-ek004"}
MODELS = {"BMW": ["SERIE 1", "SERIE 3", "X1"], "RENAULT": ["CLIO V", "MEGANE", "CAPTUR"],
          "PEUGEOT": ["208", "308", "3008"], "VOLKSWAGEN": ["GOLF", "POLO", "T-ROC"], "AUDI": ["A3", "Q3"]}
WMI = {"BMW": "WBA", "RENAULT": "VF1", "PEUGEOT": "VF3", "VOLKSWAGEN": "WVW", "AUDI": "WAU"}
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # a VIN never uses I, O or Q
# «Emplacement déclaré»: installers' codes (as the seed's "Y4B") or words; some vehicles have none.
LOCATIONS = ["Y4B", "X2A", "Z1C", "Sous le siège conducteur", "Derrière la boîte à gants", "Coffre, près de la roue "
             "de secours", "Sous le tableau de bord", None]


def demo_vin(rng: random.Random, marque: str) -> str:
    return WMI[marque] + "".join(rng.choice(VIN_CHARS) for _ in range(6)) + "".join(
        rng.choice("0123456789") for _ in range(8))


def load_removals_demo(session: Session) -> None:
    orgs = upsert_organisations(session, [(slug, name, kind) for slug, name, kind, *_ in ORGANISATIONS])
    for slug, _name, _kind, code, email, _count in ORGANISATIONS:
        session.execute(insert(Account).values(organisation_id=orgs[slug], code=code, email=email, last_request_no=0)
                        .on_conflict_do_nothing())
    upsert_users(session, orgs, USERS)
    upsert_api_keys(session, orgs, API_KEYS)
    for slug, _name, _kind, _code, _email, count in ORGANISATIONS:
        rng = random.Random(f"removals-{slug}")
        places = random.Random(f"removals-{slug}-locations")  # its own draws: the VINs stay the same as before
        rows = []
        for n in range(count):
            marque = rng.choice(sorted(MODELS))
            rows.append({"organisation_id": orgs[slug], "vin": demo_vin(rng, marque), "marque": marque,
                         "modele": rng.choice(MODELS[marque]), "subscription_status": "active",
                         "subscription_no": f"{140200 + n:06d}C{rng.randint(10, 99)}",
                         "declared_location": places.choice(LOCATIONS)})
        if rows:
            stmt = insert(TrackedVehicle)
            # An older demo database gets the emplacements too; one edited since keeps its value.
            session.execute(stmt.on_conflict_do_update(index_elements=["vin"], set_={
                "declared_location": func.coalesce(TrackedVehicle.declared_location, stmt.excluded.declared_location)}),
                rows)
