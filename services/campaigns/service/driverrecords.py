"""What drivers entered reaches their records: the licence and address of «Mes informations» and the odometer
readings, each with who entered it, when, and which workflow asked for it."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.models import Driver, DriverInfoEntry, FollowUp, OdometerReading, Vehicle

HISTORY_ROWS = 50
LICENCE_FIELDS = ("permis_numero", "permis_date", "permis_categories")
ADDRESS_FIELDS = ("adresse", "code_postal", "ville")


@dataclass
class Informations:
    """«Mes informations» as the Espace Conducteur validated them."""

    permis_numero: str
    permis_date: date
    permis_categories: str
    adresse: str
    code_postal: str
    ville: str
    departement: str


@dataclass
class Provenance:
    """The driver's latest entry, and whether the record still shows what he entered (an import may have
    changed the address since)."""

    entry: DriverInfoEntry
    licence_current: bool
    address_current: bool


def asking_workflow(session: Session, *, driver_id: int, family: str) -> str | None:
    """The name of the driver's running workflow of this family (the one his answer closes), if any."""
    stmt = (select(FollowUp.definition_name)
            .where(FollowUp.driver_id == driver_id, FollowUp.family == family, FollowUp.status == "en_cours")
            .order_by(FollowUp.started_at.desc(), FollowUp.id.desc()).limit(1))
    return session.scalar(stmt)


def record_informations(session: Session, *, driver: Driver, info: Informations) -> DriverInfoEntry:
    """Write what the driver entered on his record and keep the entry (when, which workflow asked)."""
    driver.permis_numero, driver.permis_date, driver.permis_categories = (info.permis_numero, info.permis_date,
                                                                          info.permis_categories)
    driver.adresse, driver.code_postal, driver.ville = info.adresse, info.code_postal, info.ville
    driver.departement = info.departement
    entry = DriverInfoEntry(organisation_id=driver.organisation_id, driver_id=driver.id,
                            permis_numero=info.permis_numero, permis_date=info.permis_date,
                            permis_categories=info.permis_categories, adresse=info.adresse,
                            code_postal=info.code_postal, ville=info.ville,
                            workflow_name=asking_workflow(session, driver_id=driver.id, family="informations"))
    session.add(entry)
    return entry


def info_history(session: Session, *, organisation_id: int, driver_id: int) -> list[DriverInfoEntry]:
    """The driver's entries, the latest first."""
    stmt = (select(DriverInfoEntry)
            .where(DriverInfoEntry.organisation_id == organisation_id, DriverInfoEntry.driver_id == driver_id)
            .order_by(DriverInfoEntry.created_at.desc(), DriverInfoEntry.id.desc()).limit(HISTORY_ROWS))
    return list(session.scalars(stmt))


def provenance(driver: Driver, history: list[DriverInfoEntry]) -> Provenance | None:
    """Who entered what the record shows: the latest entry, compared with the current values."""
    if not history:
        return None
    entry = history[0]

    def same(fields: tuple[str, ...]) -> bool:
        return all(getattr(entry, name) == getattr(driver, name) for name in fields)

    return Provenance(entry, same(LICENCE_FIELDS), same(ADDRESS_FIELDS))


def reading_history(session: Session, *, organisation_id: int,
                    vehicle_id: int) -> list[tuple[OdometerReading, Driver | None]]:
    """The vehicle's readings with the driver who entered each, the latest first."""
    stmt = (select(OdometerReading, Driver).outerjoin(Driver, Driver.id == OdometerReading.driver_id)
            .where(OdometerReading.organisation_id == organisation_id, OdometerReading.vehicle_id == vehicle_id)
            .order_by(OdometerReading.reading_date.desc(), OdometerReading.created_at.desc(),
                      OdometerReading.id.desc()).limit(HISTORY_ROWS))
    return [(reading, driver) for reading, driver in session.execute(stmt)]


def current_reading(vehicle: Vehicle, readings: list[tuple[OdometerReading, Driver | None]]
                    ) -> tuple[OdometerReading, Driver | None] | None:
    """The reading the vehicle's «Dernier relevé» comes from, or None (it came from the vehicles' import)."""
    return next(((r, d) for r, d in readings
                 if r.km == vehicle.dernier_releve_km and r.reading_date == vehicle.date_dernier_releve), None)
