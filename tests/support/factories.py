"""Test data: a fresh organisation with its manager, drivers and vehicles, isolated from the demo data."""

from dataclasses import dataclass
from datetime import date
from uuid import uuid4

from core.db import session_scope
from core.models import Organisation, User
from core.security import hash_password
from services.campaigns.models import Driver, Vehicle

PASSWORD = "relais-demo"


@dataclass
class TestOrg:
    __test__ = False
    id: int
    slug: str
    manager_email: str
    driver_ids: list[int]


def make_org(*, drivers: list[dict[str, object]] | None = None, count: int = 0, no_email_every: int = 0,
             with_vehicle: bool = True) -> TestOrg:
    """An organisation with a manager and drivers (explicit dicts, or `count` generated ones)."""
    slug = f"test-{uuid4().hex[:8]}"
    specs = list(drivers or [])
    for n in range(1, count + 1):
        has_email = not (no_email_every and n % no_email_every == 0)
        specs.append({"matricule": f"M{n:04d}", "nom": f"Nom{n:03d}", "prenom": f"Prénom{n}",
                      "email": f"conducteur{n}@{slug}.example" if has_email else None,
                      "code_postal": "31000", "departement": "31", "vehicle": with_vehicle})
    with session_scope() as session:
        org = Organisation(slug=slug, name=f"Organisation {slug}", kind="fleet")
        session.add(org)
        session.flush()
        manager = f"gestionnaire@{slug}.example"
        session.add(User(organisation_id=org.id, email=manager, full_name="Gestionnaire Test", role="manager",
                         password_hash=hash_password(PASSWORD)))
        ids = []
        for i, spec in enumerate(specs):
            spec = dict(spec)
            vehicle = spec.pop("vehicle", False)
            driver = Driver(organisation_id=org.id, **spec)
            session.add(driver)
            session.flush()
            ids.append(driver.id)
            if vehicle:
                session.add(Vehicle(organisation_id=org.id, immatriculation=f"AB-{i:03d}-CD", type_materiel="VP",
                                    marque="PEUGEOT", modele="308", loueur="ARVAL", duree_contrat_mois=36,
                                    driver_id=driver.id, dernier_releve_km=12000 + i,
                                    date_dernier_releve=date(2026, 10, 1)))
        return TestOrg(org.id, slug, manager, ids)
