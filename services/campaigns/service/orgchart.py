"""The fleet's organisation chart: the «Valideur» and «Responsable» people the drivers file names.

They come with the drivers file (columns Responsable / Email responsable, Valideur / Email valideur), keyed by their
e-mail address, whether or not they are utilisateurs (drivers) themselves. Lists pick them to reach their teams.
"""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.campaigns.models import Driver

# role → (e-mail column, name column) of the utilisateurs they validate or manage
ROLES = {"valideur": (Driver.valideur_email, Driver.valideur_nom),
         "responsable": (Driver.responsable_email, Driver.responsable_nom)}
ROLE_LABELS = {"valideur": "Valideur", "responsable": "Responsable"}


@dataclass
class Person:
    email: str  # lower case: the key
    name: str
    counts: dict[str, int]  # role → how many utilisateurs they validate / manage
    driver_id: int | None  # the utilisateur with this address, if any

    def label(self) -> str:
        return f"{self.name} ({self.email})" if self.name != self.email else self.email


def org_chart(session: Session, *, organisation_id: int, role: str | None = None) -> list[Person]:
    """Everyone the organisation's utilisateurs name as valideur or responsable (only `role`'s if given), by name."""
    people: dict[str, Person] = {}
    for name, (email_col, name_col) in ROLES.items():
        if role and name != role:
            continue
        key = func.lower(func.trim(email_col))
        stmt = (select(key, func.max(name_col), func.count())
                .where(Driver.organisation_id == organisation_id, func.coalesce(func.trim(email_col), "") != "")
                .group_by(key))
        for email, full_name, count in session.execute(stmt):
            person = people.setdefault(email, Person(email, full_name or email, {}, None))
            if full_name and person.name == email:
                person.name = full_name
            person.counts[name] = count
    if people:
        drivers = select(func.lower(Driver.email), func.min(Driver.id)).where(
            Driver.organisation_id == organisation_id, func.lower(Driver.email).in_(list(people))
        ).group_by(func.lower(Driver.email))
        for email, driver_id in session.execute(drivers):
            people[email].driver_id = driver_id
    return sorted(people.values(), key=lambda p: (p.name.lower(), p.email))
