"""The dynamic fields a campaigns template may use, and their values for one driver."""

from typing import Any

from core.settings import Settings
from services.campaigns.models import Driver

# Grows with the fleet reference data (vehicles, readings) in the campaigns issues.
FIELDS: dict[str, str] = {
    "nom": "Nom",
    "prenom": "Prénom",
    "matricule": "Matricule",
    "code_postal": "Code postal",
    "email": "Email",
}


def driver_context(driver: Driver, settings: Settings) -> dict[str, Any]:
    return {
        "nom": driver.nom,
        "prenom": driver.prenom,
        "matricule": driver.matricule,
        "code_postal": driver.code_postal or "",
        "email": driver.email or "",
    }
