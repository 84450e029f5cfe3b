"""The dynamic fields a campaigns template may use, and their values for one driver."""

import unicodedata
from datetime import date
from typing import Any

from core.maillayout import button_html
from services.campaigns.models import Driver, Fine, Vehicle

# Order and names as the seed's "CHAMPS DYNAMIQUES" panel shows them.
FIELDS: dict[str, str] = {
    "nom": "Nom",
    "prenom": "Prénom",
    "matricule": "Matricule",
    "code_postal": "Code postal",
    "email": "Email",
    "vehicule_actuel": "Véhicule actuel",
    "futur_vehicule": "Futur véhicule",
    "loueur": "Loueur",
    "duree_de_contrat": "Durée de contrat",
    "dernier_releve": "Dernier relevé kilométrique",
    "date_dernier_releve": "Date du dernier relevé",
    "lien_connexion": "Lien vers l'Espace Conducteur",
    # Contraventions workflows: the fine being followed up (empty elsewhere).
    "numero_amende": "N° de l'amende",
    "date_amende": "Date de l'amende",
    "montant_amende": "Montant de l'amende",
}
LINK_FIELD = "lien_connexion"
# Other spellings of a field: the seed's creation screen writes this one with an accent.
ALIASES: dict[str, str] = {"date_dernier_relevé": "date_dernier_releve"}
LINK_LABEL = "Accéder à mon Espace Conducteur"


def field_name(raw: str) -> str:
    """The field a `{{...}}` names: spaces and Unicode form ignored, other spellings resolved."""
    name = unicodedata.normalize("NFC", raw.strip())
    return ALIASES.get(name, name)


def _date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def driver_context(driver: Driver, vehicle: Vehicle | None, *, link: str, html: bool = False,
                   fine: Fine | None = None) -> dict[str, Any]:
    """Values of every field for one driver; in HTML the link is a button to tap, elsewhere the bare URL."""
    vehicule = " ".join(p for p in (vehicle.marque, vehicle.modele, vehicle.immatriculation) if p) if vehicle else ""
    return {
        "nom": driver.nom,
        "prenom": driver.prenom,
        "matricule": driver.matricule,
        "code_postal": driver.code_postal or "",
        "email": driver.email or "",
        "vehicule_actuel": vehicule,
        "futur_vehicule": (vehicle.futur_vehicule if vehicle else None) or "",
        "loueur": (vehicle.loueur if vehicle else None) or "",
        "duree_de_contrat": f"{vehicle.duree_contrat_mois} mois" if vehicle and vehicle.duree_contrat_mois else "",
        "dernier_releve": f"{vehicle.dernier_releve_km:,} km".replace(",", " ")
        if vehicle and vehicle.dernier_releve_km is not None else "",
        "date_dernier_releve": _date(vehicle.date_dernier_releve if vehicle else None),
        LINK_FIELD: button_html(link, LINK_LABEL) if html else link,
        "numero_amende": fine.numero if fine else "",
        "date_amende": _date(fine.date_infraction if fine else None),
        "montant_amende": f"{fine.montant:.2f} €".replace(".", ",") if fine and fine.montant is not None else "",
    }
