"""Demo fines and what drivers entered, so that «Amendes» (Paiement, Actions, the payment proof) and the driver and
vehicle records (licence and address entered by the driver, odometer history) show something after `make run`.
Idempotent: fines by number, the rest only when the vehicle or driver has none yet."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import scoped
from services.campaigns.models import Driver, DriverInfoEntry, Fine, FineProof, OdometerReading, Vehicle

SLUG = "garonne"
PROOF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
         b"trailer<</Root 1 0 R>>\n%%EOF\n")


def load_records_demo(session: Session, orgs: dict[str, int]) -> None:
    if SLUG not in orgs:
        return
    organisation_id = orgs[SLUG]
    vehicles = list(session.scalars(scoped(Vehicle, organisation_id).where(Vehicle.driver_id.is_not(None))
                                    .order_by(Vehicle.immatriculation).limit(3)))
    if len(vehicles) < 3:
        return
    fines = [("FPS-2026-000000000000123456", date(2026, 11, 2), vehicles[0], "FPS", None, Decimal("35.00")),
             ("FPS-2026-000000000000124789", date(2026, 10, 12), vehicles[1], "FPS", date(2026, 10, 20),
              Decimal("35.00")),
             ("ANTAI-2026-0042", date(2026, 9, 28), vehicles[2], "Excès de vitesse", None, Decimal("135.00"))]
    known = set(session.scalars(scoped(Fine, organisation_id).with_only_columns(Fine.numero)))
    for numero, day, vehicle, kind, paid, amount in fines:
        if numero in known:
            continue
        fine = Fine(organisation_id=organisation_id, numero=numero, date_infraction=day,
                    immatriculation=vehicle.immatriculation, vehicle_id=vehicle.id, driver_id=vehicle.driver_id,
                    classe="4e classe" if kind != "FPS" else None, type_amende=kind, montant=amount,
                    source="Antai" if numero.startswith("ANTAI") else "Ajout manuel", date_paiement=paid)
        session.add(fine)
        session.flush()
        if paid:
            session.add(FineProof(fine_id=fine.id, filename="justificatif-paiement.pdf",
                                  content_type="application/pdf", data=PROOF))
    vehicle = vehicles[0]
    if not session.scalar(select(func.count()).where(OdometerReading.vehicle_id == vehicle.id)):
        last_km = vehicle.dernier_releve_km or 12_000
        last_day = vehicle.date_dernier_releve or date(2026, 10, 1)
        for back, km in ((120, last_km - 3_800), (60, last_km - 1_550), (0, last_km)):
            day = last_day - timedelta(days=back)
            session.add(OdometerReading(organisation_id=organisation_id, vehicle_id=vehicle.id,
                                        driver_id=vehicle.driver_id, km=max(km, 0), reading_date=day,
                                        created_at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
                                        workflow_name="WF-Relevé KM"))
        vehicle.dernier_releve_km, vehicle.date_dernier_releve = last_km, last_day
    driver = session.get(Driver, vehicle.driver_id) if vehicle.driver_id else None
    if driver is not None and not session.scalar(select(func.count()).where(DriverInfoEntry.driver_id == driver.id)):
        driver.permis_numero, driver.permis_date, driver.permis_categories = "120831100456", date(2012, 3, 14), "B"
        driver.adresse, driver.code_postal, driver.ville = "12 allée des Demoiselles", "31400", "Toulouse"
        session.add(DriverInfoEntry(organisation_id=organisation_id, driver_id=driver.id,
                                    permis_numero=driver.permis_numero, permis_date=driver.permis_date,
                                    permis_categories="B", adresse=driver.adresse, code_postal="31400",
                                    ville="Toulouse", workflow_name="WF-Informations",
                                    created_at=datetime(2026, 11, 20, 10, 5, tzinfo=UTC)))
