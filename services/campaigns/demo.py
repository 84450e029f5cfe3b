"""Fleet demo data: fictional drivers and vehicles for the demo organisations, the same on every machine.

Matricules GAR00001…GAR00300 and ARM00001…ARM00060 (every 12th driver without e-mail) are what the tests and
the README expect. Rows are upserted on their business key, so older demo rows get the newer columns filled.
"""

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import scoped
from core.demo import ascii_address
from services.campaigns.departements import departement_from_postal_code
from services.campaigns.models import Driver, Vehicle

COUNTS = {"garonne": 300, "armor": 60}
PRENOMS = ["Camille", "Lucas", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Emma", "Jules", "Inès",
           "Arthur", "Sarah", "Nathan", "Zoé", "Théo", "Jade", "Raphaël", "Louise", "Tom", "Élodie", "Noé",
           "Maël", "Anaïs", "Bastien", "Céline", "Dorian", "Gaëlle", "Loïc", "Margaux", "Quentin", "Solène"]
NOMS = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
        "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
        "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Le Goff", "Castelli",
        "Kerjean", "Le Bihan", "Santoni", "Payet", "Hoarau", "Jean-Baptiste", "Étienne", "Lacroix"]
FEMININE = {"Camille", "Léa", "Chloé", "Manon", "Emma", "Inès", "Sarah", "Zoé", "Jade", "Louise", "Élodie",
            "Anaïs", "Céline", "Gaëlle", "Margaux", "Solène"}
# (postal code, town, weight per organisation): Garonne is based in Toulouse, Armor in Brittany.
PLACES = [
    ("31000", "Toulouse", 30, 1), ("31400", "Toulouse", 20, 0), ("31200", "Toulouse", 12, 0),
    ("31700", "Blagnac", 10, 0), ("33000", "Bordeaux", 12, 2), ("33700", "Mérignac", 6, 0),
    ("75011", "Paris", 6, 3), ("75015", "Paris", 4, 2), ("78000", "Versailles", 4, 2),
    ("20000", "Ajaccio", 3, 1), ("20090", "Ajaccio", 2, 0), ("20200", "Bastia", 3, 1),
    ("97400", "Saint-Denis", 3, 1), ("97410", "Saint-Pierre", 2, 0), ("97110", "Pointe-à-Pitre", 2, 1),
    ("97200", "Fort-de-France", 1, 1), ("29200", "Brest", 3, 14), ("29000", "Quimper", 1, 10),
    ("35000", "Rennes", 2, 12), ("22000", "Saint-Brieuc", 0, 8), ("56100", "Lorient", 1, 8),
    ("44000", "Nantes", 3, 4), ("69003", "Lyon", 4, 1), ("13008", "Marseille", 4, 1),
    ("34000", "Montpellier", 5, 0), ("64100", "Bayonne", 4, 0), ("81000", "Albi", 5, 0),
    ("82000", "Montauban", 5, 0), ("65000", "Tarbes", 3, 0), ("01000", "Bourg-en-Bresse", 1, 0),
]
STREETS = ["rue de la République", "avenue Jean Jaurès", "chemin des Vignes", "place du Marché", "rue Victor Hugo",
           "boulevard Gambetta", "impasse des Tilleuls", "rue du Port", "allée des Chênes", "route de la Mer"]
MODELS = {  # marque → [(modèle, type)]
    "TOYOTA": [("YARIS", "VP"), ("COROLLA", "VP"), ("RAV4 V", "VP"), ("C-HR", "VP"), ("PROACE", "VU")],
    "PEUGEOT": [("208", "VP"), ("308", "VP"), ("3008", "VP"), ("PARTNER", "VU"), ("EXPERT", "VU")],
    "RENAULT": [("CLIO V", "VP"), ("MEGANE E-TECH", "VP"), ("AUSTRAL", "VP"), ("KANGOO", "VU"), ("TRAFIC", "VU")],
    "VOLKSWAGEN": [("GOLF VIII", "VP"), ("TOURAN", "VP"), ("ID.3", "VP"), ("TRANSPORTER", "VU")],
    "SKODA": [("OCTAVIA IV", "VP"), ("SUPERB III", "VP"), ("ENYAQ", "VP")],
}
ENGINES = ["1.5 HYBRID 130", "1.2 PURETECH 130", "2.0 TDI 115 DSG7", "ELECTRIQUE 204 CH", "1.6 E-TECH 145"]
TRIMS = ["BUSINESS", "ACTIVE", "ALLURE", "LOUNGE BUSINESS", "DESIGN", "EXECUTIVE"]
LOUEURS = ["ARVAL", "ALPHABET", "AYVENS"]
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTVWXYZ"  # SIV never uses I, O, U
ORG_CHART_ONLY = {"garonne": ("Hélène Castaing", "helene.castaing@garonne.example"),
                  "armor": ("Yann Le Gall", "yann.legall@armor.example")}
GROUPES, SOCIETES, IMPUTATIONS = ["GRP-SUD", "GRP-OUEST"], ["SOC-01", "SOC-02"], ["IMP-100", "IMP-200", "IMP-300"]


def _plate(rng: random.Random, used: set[str]) -> str:
    while True:
        letters = "".join(rng.choice(PLATE_LETTERS) for _ in range(4))
        plate = f"{letters[:2]}-{rng.randint(1, 999):03d}-{letters[2:]}"
        if plate not in used:
            used.add(plate)
            return plate


def _drivers(rng: random.Random, slug: str, organisation_id: int, count: int) -> list[dict[str, Any]]:
    weights = [p[2] if slug == "garonne" else p[3] for p in PLACES]
    rows = []
    for n in range(1, count + 1):
        prenom, nom = rng.choice(PRENOMS), rng.choice(NOMS)
        cp, ville, *_ = rng.choices(PLACES, weights)[0]
        rows.append({
            "organisation_id": organisation_id, "matricule": f"{slug[:3].upper()}{n:05d}",
            "civilite": "Mme" if prenom in FEMININE else "M.", "nom": nom, "prenom": prenom,
            "email": ascii_address(f"{prenom}.{nom}.{n}@{slug}.example") if n % 12 != 0 else None,  # some have none
            "adresse": f"{rng.randint(1, 120)} {rng.choice(STREETS)}", "code_postal": cp, "ville": ville,
            "departement": departement_from_postal_code(cp), "code_groupe": rng.choice(GROUPES),
            "code_societe": rng.choice(SOCIETES), "code_imputation": rng.choice([*IMPUTATIONS, None]),
            "responsable_nom": None, "responsable_email": None, "valideur_nom": None, "valideur_email": None,
        })
    # A handful of drivers (with an e-mail) manage and validate for the others.
    chiefs = [r for r in rows if r["email"]][: max(3, count // 50)]
    for row in rows:
        if row in chiefs:
            continue
        if rng.random() < 0.85:
            chief = rng.choice(chiefs)
            row["responsable_nom"], row["responsable_email"] = f"{chief['prenom']} {chief['nom']}", chief["email"]
        if rng.random() < 0.6:
            chief = rng.choice(chiefs)
            row["valideur_nom"], row["valideur_email"] = f"{chief['prenom']} {chief['nom']}", chief["email"]
    # Someone of the organisation chart who drives nothing validates for a few (no random draw: same data as ever).
    name, email = ORG_CHART_ONLY[slug]
    for n, row in enumerate(rows, start=1):
        if n % 4 == 0 and row["valideur_email"] is None and row not in chiefs:
            row["valideur_nom"], row["valideur_email"] = name, email
    return rows


def _vehicle(rng: random.Random, organisation_id: int, plate: str, driver_id: int | None) -> dict[str, Any]:
    marque = rng.choice(list(MODELS))
    modele, kind = rng.choice(MODELS[marque])
    bought = rng.random() < 0.08
    loueur = None if bought else rng.choice(LOUEURS)
    reading = date(2026, 1, 5) + timedelta(days=rng.randint(0, 300))
    other = rng.choice(list(MODELS))
    future = f"{other} {rng.choice(MODELS[other])[0]} (commande en cours)" if rng.random() < 0.1 else None
    gamme = f"{rng.choice(ENGINES)} {rng.choice(TRIMS)}"  # drawn in the same order as ever: same demo data
    date_fin, months = date(2025, 6, 1) + timedelta(days=rng.randint(0, 1600)), rng.choice([36, 48])
    # Active since the contract began; an unassigned vehicle whose contract ended is Inactive since its end.
    inactive = driver_id is None and date_fin < date(2026, 12, 1)
    return {
        "organisation_id": organisation_id, "immatriculation": plate, "type_materiel": kind, "marque": marque,
        "modele": modele, "gamme": gamme, "loueur": loueur,
        "mode_gestion": "ACHAT" if bought else "LLD", "fournisseur": "CONCESSION RÉGIONALE" if bought else loueur,
        "date_fin": date_fin, "duree_contrat_mois": months,
        "driver_id": driver_id, "futur_vehicule": future, "dernier_releve_km": rng.randint(3000, 160000),
        "date_dernier_releve": reading, "situation": "Inactive" if inactive else "Active",
        "situation_date": date_fin if inactive else date_fin - timedelta(days=round(months * 30.44)),
    }


def _upsert(session: Session, model: type[Driver] | type[Vehicle], key: str, rows: list[dict[str, Any]]) -> None:
    """Insert, or refresh demo rows that differ (older demo data lacked most columns)."""
    stmt = insert(model).values(rows)
    columns = [c for c in rows[0] if c not in ("organisation_id", key)]
    stmt = stmt.on_conflict_do_update(
        index_elements=["organisation_id", key],
        set_={c: stmt.excluded[c] for c in columns},
        where=or_(*(getattr(model, c).is_distinct_from(stmt.excluded[c]) for c in columns)),
    )
    session.execute(stmt)


def load_fleet_demo(session: Session, orgs: dict[str, int]) -> None:
    """Demo drivers and vehicles for the demo organisations present in `orgs` (slug → id); idempotent."""
    rng = random.Random(42)  # same demo data on every machine
    for slug, count in COUNTS.items():
        if slug not in orgs:
            continue
        organisation_id = orgs[slug]
        drivers = _drivers(rng, slug, organisation_id, count)
        _upsert(session, Driver, "matricule", drivers)
        stmt = scoped(Driver, organisation_id).with_only_columns(Driver.matricule, Driver.id)
        ids = {m: i for m, i in session.execute(stmt.where(Driver.matricule.in_([d["matricule"] for d in drivers])))}
        used: set[str] = set()
        vehicles = [_vehicle(rng, organisation_id, _plate(rng, used), ids[d["matricule"]])
                    for d in drivers if rng.random() < 0.7]
        vehicles += [_vehicle(rng, organisation_id, _plate(rng, used), None) for _ in range(max(2, count // 60))]
        _upsert(session, Vehicle, "immatriculation", vehicles)
