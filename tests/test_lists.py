"""Listes de diffusion: each filter and include/exclude combination, resolved on real PostgreSQL."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.db import session_scope
from services.campaigns.models import DistributionList
from services.campaigns.service.lists import recipients_query
from tests.support.factories import make_org
from tests.support.web import csrf_from, login, text

# A small fleet where every filter separates someone from someone else.
FLEET: list[dict[str, Any]] = [
    {"matricule": "A", "nom": "Alpha", "prenom": "Ana", "email": "ana@x.example", "departement": "31",
     "code_groupe": "GRP-SUD", "code_societe": "SOC-01", "code_imputation": "IMP-100", "vehicle": True,
     "responsable_email": "rita@x.example", "valideur_email": "victor@x.example"},
    {"matricule": "B", "nom": "Bravo", "prenom": "Bob", "email": "bob@x.example", "departement": "2A",
     "code_groupe": "GRP-OUEST", "code_societe": "SOC-02", "code_imputation": "IMP-200", "vehicle": False,
     "responsable_email": "rita@x.example"},
    {"matricule": "R", "nom": "Roméo", "prenom": "Rita", "email": "Rita@x.example", "departement": "974",
     "code_groupe": "GRP-SUD", "code_societe": "SOC-02", "code_imputation": None, "vehicle": True},
    {"matricule": "V", "nom": "Victor", "prenom": "Vic", "email": "victor@x.example", "departement": "2B",
     "code_groupe": None, "code_societe": "SOC-01", "code_imputation": "IMP-300", "vehicle": False},
    {"matricule": "N", "nom": "Noémail", "prenom": "Nina", "email": None, "departement": "31",
     "code_groupe": "GRP-OUEST", "code_societe": None, "code_imputation": "IMP-100", "vehicle": True},
]


@pytest.fixture(scope="module")
def fleet_org() -> int:
    return make_org(drivers=FLEET).id


def _resolve(org_id: int, **filters: Any) -> set[str]:
    with session_scope() as session:
        return {d.matricule for d in session.scalars(recipients_query(org_id, filters))}


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, {"A", "B", "R", "V", "N"}),
    ({"departements": ["31"]}, {"A", "N"}),
    ({"departements": ["2A", "2B", "974"]}, {"B", "V", "R"}),
    ({"immatriculation": "inclure"}, {"A", "R", "N"}),
    ({"immatriculation": "exclure"}, {"B", "V"}),
    ({"valideur": "inclure"}, {"V"}),
    ({"valideur": "exclure"}, {"A", "B", "R", "N"}),
    ({"responsable": "inclure"}, {"R"}),  # e-mails compared without case
    ({"responsable": "exclure"}, {"A", "B", "V", "N"}),
    ({"code_groupe": {"mode": "inclure", "values": ["GRP-SUD"]}}, {"A", "R"}),
    ({"code_groupe": {"mode": "exclure", "values": ["GRP-SUD"]}}, {"B", "V", "N"}),  # no code: not excluded
    ({"code_societe": {"mode": "inclure", "values": ["SOC-01", "SOC-02"]}}, {"A", "B", "R", "V"}),
    ({"code_imputation": {"mode": "exclure", "values": ["IMP-100", "IMP-300"]}}, {"B", "R"}),
    ({"code_imputation": {"mode": "inclure", "values": []}}, {"A", "B", "R", "V", "N"}),  # no value: no filter
    ({"departements": ["31", "974"], "immatriculation": "inclure", "responsable": "exclure"}, {"A", "N"}),
    ({"code_groupe": {"mode": "inclure", "values": ["GRP-OUEST"]}, "immatriculation": "exclure"}, {"B"}),
    ({"valideur": "exclure", "responsable": "exclure", "code_societe": {"mode": "exclure", "values": ["SOC-02"]}},
     {"A", "N"}),
    # Picked plates (make_org gives the i-th driver AB-<i>-CD) and picked people of the organisation chart.
    ({"immatriculation": "inclure", "plaques": ["AB-000-CD", "AB-004-CD"]}, {"A", "N"}),
    ({"immatriculation": "exclure", "plaques": ["AB-000-CD"]}, {"B", "R", "V", "N"}),
    ({"immatriculation": "inclure", "plaques": ["AB-001-CD"]}, set()),  # B has no vehicle: no such plate
    ({"valideur": "inclure", "valideurs": ["victor@x.example"]}, {"A"}),  # the people Victor validates
    ({"valideur": "exclure", "valideurs": ["victor@x.example"]}, {"B", "R", "V", "N"}),
    ({"responsable": "inclure", "responsables": ["RITA@x.example"]}, {"A", "B"}),  # addresses without case
    ({"responsable": "exclure", "responsables": ["rita@x.example"]}, {"R", "V", "N"}),
    ({"valideur": "", "valideurs": ["victor@x.example"]}, {"A", "B", "R", "V", "N"}),  # no mode: no filter
])
def test_each_filter_and_combination(fleet_org: int, filters: dict[str, Any], expected: set[str]) -> None:
    assert _resolve(fleet_org, **filters) == expected


def test_another_organisations_drivers_are_never_resolved(fleet_org: int) -> None:
    assert _resolve(make_org(count=3).id) == {"M0001", "M0002", "M0003"}
    assert "M0001" not in _resolve(fleet_org)


def _count_lists(org_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(DistributionList.organisation_id == org_id)) or 0


async def test_create_a_list_and_show_its_recipients(http: httpx.AsyncClient) -> None:
    org = make_org(drivers=FLEET)
    await login(http, org.manager_email)
    form = await http.get("/listes/nouvelle")
    assert "2A – Corse-du-Sud" in text(form) and "974 – La Réunion" in text(form)
    refused = await http.post("/listes/nouvelle", data={"csrf_token": csrf_from(form.text), "name": "Corse",
                                                        "departements": ["2A", "99"],
                                                        "code_groupe_mode": "inclure"})
    assert refused.status_code == 422
    assert "Département inconnu : 99." in text(refused)
    assert "Choisissez au moins une valeur de code groupe à inclure." in text(refused)
    assert _count_lists(org.id) == 0
    created = await http.post("/listes/nouvelle", data={
        "csrf_token": csrf_from(form.text), "name": "Corse avec véhicule ou non", "departements": ["2A", "2B"],
        "immatriculation": "", "code_societe_mode": "exclure", "code_societe": ["SOC-02"]})
    assert created.status_code == 303
    recipients = await http.get(created.headers["location"])
    page = text(recipients)
    assert '<strong id="recipient-count">1</strong>' in page and "Victor" in page and "Bravo" not in page
    assert "Départements : 2A Corse-du-Sud, 2B Haute-Corse" in page
    listing = text(await http.get("/listes"))
    assert "Corse avec véhicule ou non" in listing and "Gestionnaire Test" in listing


def test_people_of_the_org_chart_need_not_be_drivers() -> None:
    """Hugo validates two drivers without being one: he is in the organisation chart, and picking him finds them."""
    from services.campaigns.service.lists import pick_choices
    from services.campaigns.service.orgchart import org_chart

    org = make_org(drivers=[
        {"matricule": "D1", "nom": "Un", "prenom": "A", "email": "d1@x.example", "valideur_nom": "Hugo Valmont",
         "valideur_email": "Hugo@x.example ", "responsable_nom": "Deux B", "responsable_email": "d2@x.example"},
        {"matricule": "D2", "nom": "Deux", "prenom": "B", "email": "d2@x.example", "valideur_nom": "Hugo Valmont",
         "valideur_email": "hugo@x.example"},
        {"matricule": "D3", "nom": "Trois", "prenom": "C", "email": "d3@x.example"}])
    with session_scope() as session:
        people = {p.email: p for p in org_chart(session, organisation_id=org.id)}
        choices = pick_choices(session, organisation_id=org.id)
    assert set(people) == {"hugo@x.example", "d2@x.example"}
    assert people["hugo@x.example"].counts == {"valideur": 2} and people["hugo@x.example"].driver_id is None
    assert people["d2@x.example"].driver_id == org.driver_ids[1]
    assert choices["valideur"] == [("hugo@x.example", "Hugo Valmont (hugo@x.example) — 2 utilisateurs, "
                                                      "hors utilisateurs")]
    assert choices["responsable"] == [("d2@x.example", "Deux B (d2@x.example) — 1 utilisateur")]
    assert _resolve(org.id, valideur="inclure", valideurs=["hugo@x.example"]) == {"D1", "D2"}
    assert _resolve(org.id, valideur="exclure", valideurs=["hugo@x.example"]) == {"D3"}
    assert _resolve(org.id, responsable="inclure") == {"D2"}  # the responsables themselves, when utilisateurs
