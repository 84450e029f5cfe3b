"""Campaigns demo: the two fleet organisations, their logins and partner keys, then their fleet and communication
data (`demo.py`, `demo_communication.py`)."""

from sqlalchemy.orm import Session

from core.demo import upsert_api_keys, upsert_organisations, upsert_users
from services.campaigns.demo import load_fleet_demo
from services.campaigns.demo_communication import load_communication_demo
from services.campaigns.demo_records import load_records_demo

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


def load_campaigns_demo(session: Session) -> None:
    orgs = upsert_organisations(session, ORGANISATIONS)
    upsert_users(session, orgs, USERS)
    upsert_api_keys(session, orgs, API_KEYS)
    load_fleet_demo(session, orgs)
    load_communication_demo(session, orgs)
    load_records_demo(session, orgs)
