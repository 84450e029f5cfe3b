"""Notices demo data: a fictional broker, « Cabinet Lambert Assurances », with two legal entities, about 300
clients (some without e-mail, some with « AE par mail » unticked), their contracts with fictional insurers and a
receipt per contract falling due next month; its users (password "relais-demo") and a partner API key.

A few receipts make each run option change the count of notices (`_specials`): two «Acomptes affectés» (one on a
contract with an unpaid receipt of this month, «en arriéré»), an «Acompte libre», an «Appel d'acomptes», two
proposals («Pollicitation», one for a client «Sans Pollicitation») and an «Avance cabinet».

Idempotent, the same on every machine: rows are keyed by their numbers, and the receipts of the coming due month are
numbered by that month, so loading the demo again next month adds that month's receipts.
"""

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import scoped
from core.demo import ascii_address, upsert_api_keys, upsert_organisations, upsert_users
from core.ui import today_paris
from services.notices.models import Client, Contract, LegalEntity, Receipt

SLUG = "lambert-assurances"
ORGANISATIONS = [(SLUG, "Cabinet Lambert Assurances", "broker")]
USERS = [
    ("gestionnaire@lambert-assurances.example", "Hélène Lambert", SLUG, "manager"),
    ("admin@lambert-assurances.example", "Bruno Lambert", SLUG, "admin"),
    ("lecture@lambert-assurances.example", "Agathe Roussel", SLUG, "viewer"),
]
API_KEYS = {SLUG: "rk_demolambert_cle-de-demo-lambert"}
# Phone numbers from the ranges kept for fiction; e-mails on .example; "FR00…" is no company's VAT number.
ENTITIES = [
    {"code": "LAMBERT", "name": "Cabinet Lambert Assurances", "address1": "12, rue de la République",
     "address2": "2e étage", "postal_code": "69002", "town": "LYON", "phone": "04 65 71 01 10",
     "fax": "04 65 71 01 11", "email": "contact@lambert-assurances.example", "vat_number": None,
     "letter_town": "LYON", "next_notice_no": 1},
    {"code": "LAMBERT-PRO", "name": "Lambert Assurances Entreprises", "address1": "48, cours Émile Zola",
     "address2": None, "postal_code": "69100", "town": "VILLEURBANNE", "phone": "04 65 71 02 20", "fax": None,
     "email": "entreprises@lambert-assurances.example", "vat_number": "FR00999999999",
     "letter_town": "VILLEURBANNE", "next_notice_no": 1},
]
INSURERS = ["Mutuelle du Rhône", "Assurances Confluence", "Garantie Alpine", "La Prévoyance Lyonnaise",
            "Atlas Assurances IARD"]
PERSONAL = ["Multirisques habitation", "Automobile", "Protection juridique", "Santé individuelle",
            "Garantie des accidents de la vie", "Assurance scolaire"]
BUSINESS = ["Multirisque professionnelle", "Responsabilité civile professionnelle", "Bris de machine",
            "Flotte automobile", "Protection juridique professionnelle"]
LAST_NAMES = ["Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
              "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard",
              "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Müller", "Lefebvre", "Faure",
              "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand",
              "Gauthier", "Garcia", "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu"]
WOMEN = ["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Hélène", "Céline", "Chloé", "Léa",
         "Camille", "Manon", "Inès", "Sophie", "Élodie", "Anaïs"]
MEN = ["Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "François", "Julien", "Thomas", "Lucas",
       "Hugo", "Stéphane", "Éric", "Olivier", "Mathieu", "Sébastien"]
COMPANIES = [("SARL", "Boulangerie des Pentes"), ("SAS", "Atelier Rhône Métal"), ("SCI", "Les Terrasses"),
             ("EURL", "Plomberie Perrache"), ("SARL", "Garage de la Croix-Rousse"), ("SAS", "Imprimerie Bellecour"),
             ("Association", "Amicale des Canuts"), ("SARL", "Fromagerie de Saint-Jean")]
STREETS = ["rue Victor Hugo", "avenue Jean Jaurès", "rue de la Charité", "boulevard des Belges", "rue Mercière",
           "quai Saint-Vincent", "rue Paul Bert", "avenue Berthelot", "rue Garibaldi", "montée de la Grande Côte"]
TOWNS = [("69001", "LYON"), ("69003", "LYON"), ("69006", "LYON"), ("69007", "LYON"), ("69100", "VILLEURBANNE"),
         ("69500", "BRON"), ("69300", "CALUIRE-ET-CUIRE"), ("69130", "ÉCULLY"), ("69200", "VÉNISSIEUX"),
         ("69800", "SAINT-PRIEST")]
MANAGERS = [("Hélène Lambert", "gestionnaire@lambert-assurances.example"),
            ("Karim Haddad", "k.haddad@lambert-assurances.example")]
CLIENTS = 300


def _next_month(today: date) -> date:
    return date(today.year + today.month // 12, today.month % 12 + 1, 1)


def _clients(rng: random.Random, organisation_id: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(1, CLIENTS + 1):
        company = n % 9 == 0
        if company:
            title, last_name = COMPANIES[(n // 9) % len(COMPANIES)]
            last_name = f"{last_name} {n // 9 // len(COMPANIES) + 1}" if n > 9 * len(COMPANIES) else last_name
            first_name, number = None, f"E{n}"
        else:
            title = rng.choice(["M.", "Mme", "M.", "Mme", "M. et Mme", "Mlle", "Dr"])
            women = title in ("Mme", "Mlle") or (title == "Dr" and rng.random() < 0.5)
            first_name, last_name = rng.choice(WOMEN if women else MEN), rng.choice(LAST_NAMES)
            number = f"P{n}"
        postal_code, town = rng.choice(TOWNS)
        # Most clients with an address asked for e-mail notices; every 25th ticked the box and has no address.
        has_email = n % 25 != 0 and rng.random() < 0.85
        email = ascii_address(f"{(first_name or 'contact')}.{last_name}{n}@exemple-client.example") if has_email \
            else None
        by_email = n % 25 == 0 or (has_email and rng.random() < 0.75)
        manager, manager_email = MANAGERS[n % len(MANAGERS)]
        status = "P" if n % 30 == 0 else ("D" if n % 17 == 0 else "C")
        rows.append({"organisation_id": organisation_id, "number": number, "title": title, "last_name": last_name,
                     "first_name": first_name, "address1": f"{rng.randint(1, 120)} {rng.choice(STREETS)}",
                     "address2": "Bâtiment B" if n % 13 == 0 else None, "postal_code": postal_code, "town": town,
                     "email": email, "notice_by_email": by_email, "account_manager": manager,
                     "account_manager_email": manager_email, "status": status, "no_solicitation": n % 11 == 0})
    return rows


def _contracts(rng: random.Random, organisation_id: int, clients: dict[str, int], entities: dict[str, int]
               ) -> list[dict[str, Any]]:
    rows = []
    for number, client_id in sorted(clients.items(), key=lambda kv: int(kv[0][1:])):
        n = int(number[1:])
        if n % 30 == 0:
            continue  # prospects (statut P) have no contract yet
        company = number.startswith("E")
        for k in range(1 if company else rng.choice([1, 1, 2, 3])):
            category = rng.choice(BUSINESS if company else PERSONAL)
            rows.append({"organisation_id": organisation_id, "number": f"LA{n:04d}{k + 1:02d}",
                         "client_id": client_id, "legal_entity_id": entities["LAMBERT-PRO" if company else "LAMBERT"],
                         "insurer": rng.choice(INSURERS), "category": category,
                         "observations": rng.choice([None, None, None, "Bonus 50 %", "Résidence secondaire",
                                                     "Franchise 300 €"]),
                         "tacit_renewal": True, "notice_period_months": 2})
    return rows


def _receipts(rng: random.Random, organisation_id: int, contracts: list[tuple[int, str]], today: date
              ) -> list[dict[str, Any]]:
    due = _next_month(today)
    rows = []
    for contract_id, contract_number in contracts:
        start = due.replace(day=rng.choice([1, 1, 1, 5, 10, 15, 20]))
        end = date(start.year + 1, start.month, start.day) - timedelta(days=1)
        premium = Decimal(rng.randint(9000, 180000)) / 100
        taxes = (premium * Decimal(rng.choice(["0.09", "0.18", "0.30"]))).quantize(Decimal("0.01"))
        fees = Decimal(rng.choice(["0.00", "5.00", "8.00", "12.00"]))
        rows.append({"organisation_id": organisation_id, "number": f"Q{due:%Y%m}-{contract_number}",
                     "contract_id": contract_id, "period_start": start, "period_end": end, "effect_date": start,
                     "entry_date": today - timedelta(days=rng.randint(1, 20)), "debit_month": due,
                     "collection": "direct" if rng.random() < 0.2 else "confie",
                     "receipt_type": "comptant" if rng.random() < 0.08 else "terme", "premium_ht": premium,
                     "taxes": taxes, "fees": fees, "total_ttc": premium + taxes + fees, "edition_date": None})
    return rows


def _specials(session: Session, organisation_id: int, entity_id: int, today: date) -> list[dict[str, Any]]:
    """The receipts the run's «Acomptes» and «Type d'édition» options act on, on clients whose notices go by mail
    (so each option visibly moves the count of notices to make)."""
    due = _next_month(today)
    this_month = today.replace(day=1)
    mailed = (select(Contract.id, Contract.number, Client.no_solicitation).join(Client, Client.id == Contract.client_id)
              .where(Contract.organisation_id == organisation_id, Contract.legal_entity_id == entity_id,
                     Client.email.is_not(None), Client.notice_by_email.is_(True))
              .order_by(Client.number, Contract.number))
    picked: dict[bool, list[tuple[int, str]]] = {False: [], True: []}
    for contract_id, number, no_solicitation in session.execute(mailed):
        picked[no_solicitation].append((contract_id, number))
    if len(picked[False]) < 6 or not picked[True]:
        return []
    rows = []

    def receipt(number: str, contract: tuple[int, str], start: date, premium: str, **values: Any) -> None:
        amount = Decimal(premium)
        taxes = (amount * Decimal("0.09")).quantize(Decimal("0.01"))
        rows.append({"organisation_id": organisation_id, "number": number, "contract_id": contract[0],
                     "period_start": start, "period_end": date(start.year + 1, start.month, 1) - timedelta(days=1),
                     "effect_date": start, "entry_date": today - timedelta(days=2), "debit_month": start,
                     "collection": "confie", "receipt_type": "terme", "premium_ht": amount, "taxes": taxes,
                     "fees": Decimal("0.00"), "total_ttc": amount + taxes, "edition_date": None} | values)

    ok, arrears, free, call, offer, advance = picked[False][:6]
    receipt(f"A{due:%Y%m}-{ok[1]}", ok, due, "120.00", kind="acompte_affecte")
    # This month's receipt still unpaid: the contract is «en arriéré», its deposit waits with the option ticked.
    receipt(f"Q{this_month:%Y%m}-{arrears[1]}-R", arrears, this_month, "310.00", outstanding=Decimal("337.90"))
    receipt(f"A{due:%Y%m}-{arrears[1]}", arrears, due, "150.00", kind="acompte_affecte")
    receipt(f"A{due:%Y%m}-{free[1]}", free, due, "80.00", kind="acompte_libre")
    receipt(f"A{due:%Y%m}-{call[1]}", call, due, "200.00", kind="appel_acomptes")
    receipt(f"P{due:%Y%m}-{offer[1]}", offer, due, "95.00", receipt_type="comptant", is_proposal=True)
    receipt(f"P{due:%Y%m}-{picked[True][0][1]}", picked[True][0], due, "95.00", receipt_type="comptant",
            is_proposal=True)
    receipt(f"Q{due:%Y%m}-{advance[1]}-AV", advance, due, "640.00", receipt_type="comptant", broker_advance=True)
    return rows


def load_notices_demo(session: Session) -> None:
    """The broker, its entities, clients, contracts and next month's receipts (kept as they are when present)."""
    orgs = upsert_organisations(session, ORGANISATIONS)
    organisation_id = orgs[SLUG]
    upsert_users(session, orgs, USERS)
    upsert_api_keys(session, orgs, API_KEYS)
    for entity in ENTITIES:
        session.execute(insert(LegalEntity).values(organisation_id=organisation_id, **entity)
                        .on_conflict_do_nothing(index_elements=["organisation_id", "code"]))
    entities = {code: pk for code, pk in session.execute(
        scoped(LegalEntity, organisation_id).with_only_columns(LegalEntity.code, LegalEntity.id))}
    rng = random.Random("notices-lambert")
    session.execute(insert(Client).on_conflict_do_nothing(index_elements=["organisation_id", "number"]),
                    _clients(rng, organisation_id))
    clients = {number: pk for number, pk in session.execute(
        scoped(Client, organisation_id).with_only_columns(Client.number, Client.id))}
    contract_rows = _contracts(rng, organisation_id, clients, entities)
    session.execute(insert(Contract).on_conflict_do_nothing(index_elements=["organisation_id", "number"]),
                    contract_rows)
    contracts = [(pk, number) for pk, number in session.execute(select(Contract.id, Contract.number).where(
        Contract.organisation_id == organisation_id, Contract.number.in_([r["number"] for r in contract_rows]))
        .order_by(Contract.number))]
    receipt_rows = _receipts(random.Random(f"notices-lambert-{_next_month(today_paris()):%Y%m}"), organisation_id,
                             contracts, today_paris())
    session.execute(insert(Receipt).on_conflict_do_nothing(index_elements=["organisation_id", "number"]),
                    receipt_rows)
    if specials := _specials(session, organisation_id, entities["LAMBERT"], today_paris()):
        session.execute(insert(Receipt).on_conflict_do_nothing(index_elements=["organisation_id", "number"]),
                        specials)
