"""Utilisateurs et matériels over HTTP: search, record pages, scoping, all-or-nothing Excel imports, roles.

Reads use the demo organisation; imports write into a fresh organisation (tests.support.factories) so the demo
counts other tests rely on never change.
"""

import io
import re
from collections.abc import Sequence
from datetime import date
from uuid import uuid4

import httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, update

from core.db import session_scope
from core.demo import load_demo
from core.excel import read_xlsx
from core.models import Organisation
from services.campaigns.departements import DEPARTEMENTS, departement_from_postal_code
from services.campaigns.models import Driver, Vehicle
from services.campaigns.service.fleet import DRIVER_HEADERS, VEHICLE_HEADERS
from tests.support.factories import make_org
from tests.support.web import csrf_from, login, text
from wiring import SERVICES

MANAGER, VIEWER = "gestionnaire@garonne.example", "lecture@garonne.example"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx(headers: list[str], *rows: Sequence[object]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (headers, *rows):
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def driver_row(matricule: str, **overrides: object) -> list[object]:
    values: dict[str, object] = {
        "Matricule": matricule, "Civilité": "Mme", "Nom": "Étienne", "Prénom": "Gaëlle",
        "Email": f"{matricule.lower()}@exemple.fr", "Adresse": "3 rue du Port", "Code postal": "20090",
        "Ville": "Ajaccio", "Responsable": "Rita Roméo", "Email responsable": "rita@exemple.fr", "Valideur": None,
        "Email valideur": None, "Code groupe": "GRP-SUD", "Code société": "SOC-01", "Code imputation": "IMP-100",
    } | overrides
    return [values[h] for h in DRIVER_HEADERS]


def vehicle_row(plate: str, matricule: str | None, **overrides: object) -> list[object]:
    values: dict[str, object] = {
        "Immatriculation": plate, "Type": "vp", "Marque": "TOYOTA", "Modèle": "RAV4 V", "Gamme": "HYBRIDE",
        "Loueur": "ARVAL", "Mode de gestion": "LLD", "Fournisseur": "ARVAL", "Date de fin": "24/01/2028",
        "Durée de contrat (mois)": 48, "Matricule conducteur": matricule, "Futur véhicule": None,
        "Dernier relevé (km)": "12 500", "Date dernier relevé": "01/10/2026", "Situation": None,
        "Date de situation": None,
    } | overrides
    return [values[h] for h in VEHICLE_HEADERS]


def tag() -> str:
    return f"TST{uuid4().hex[:6].upper()}"


def count(model: type[Driver] | type[Vehicle], organisation_id: int) -> int:
    with session_scope() as session:
        stmt = select(func.count()).select_from(model).where(model.organisation_id == organisation_id)
        return session.scalar(stmt) or 0


def demo(matricule: str) -> Driver:
    with session_scope() as session:
        driver = session.scalars(select(Driver).where(Driver.matricule == matricule)).one()
        session.expunge(driver)
        return driver


async def upload(http: httpx.AsyncClient, path: str, data: bytes, name: str = "fichier.xlsx") -> httpx.Response:
    page = await http.get(f"{path}/import")
    assert page.status_code == 200
    return await http.post(f"{path}/import", data={"csrf_token": csrf_from(page.text)},
                           files={"fichier": (name, data, XLSX)})


@pytest.mark.parametrize(("cp", "expected"), [
    ("20090", "2A"), ("20000", "2A"), ("20190", "2A"), ("20200", "2B"), ("20620", "2B"), ("97400", "974"),
    ("97110", "971"), ("97133", "971"), ("97600", "976"), ("75011", "75"), ("01000", "01"), ("29200", "29"),
    ("ABCDE", None), ("7501", None), ("750111", None), ("", None), (None, None), ("97500", None), ("98000", None),
    ("00100", None), ("96000", None),
])
def test_departement_from_postal_code(cp: str | None, expected: str | None) -> None:
    assert departement_from_postal_code(cp) == expected


def test_every_departement_is_listed_once_with_corsica_split() -> None:
    assert len(DEPARTEMENTS) == 101 and "20" not in DEPARTEMENTS
    assert DEPARTEMENTS["2A"] == "Corse-du-Sud" and DEPARTEMENTS["974"] == "La Réunion"


def test_demo_fleet_is_spread_and_idempotent() -> None:
    with session_scope() as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == "garonne"))
        drivers = session.scalars(select(Driver).where(Driver.organisation_id == org_id,
                                                       Driver.matricule.like("GAR%"))).all()
        vehicles = session.scalars(select(Vehicle).where(Vehicle.organisation_id == org_id)).all()
    assert len(drivers) == 300
    deps = {d.departement for d in drivers}
    assert {"2A", "2B", "974", "971", "75", "78", "31", "33", "29"} <= deps and len(deps) >= 12
    assert all(d.departement == departement_from_postal_code(d.code_postal) for d in drivers)
    assert sum(d.email is None for d in drivers) == 25
    chiefs = {d.responsable_email for d in drivers if d.responsable_email}
    assert 2 <= len(chiefs) <= 10 and chiefs <= {d.email for d in drivers}
    assert 0.6 < sum(v.driver_id is not None for v in vehicles) / 300 < 0.8
    assert any(v.driver_id is None for v in vehicles) and any(v.futur_vehicule for v in vehicles)
    assert {v.type_materiel for v in vehicles} == {"VP", "VU"}
    # A developer's older demo rows lacked the new columns: loading again fills them, and adds no row.
    with session_scope() as session:
        session.execute(update(Driver).where(Driver.matricule == "GAR00003")
                        .values(adresse=None, departement=None, code_groupe=None))
    before = (count(Driver, org_id or 0), count(Vehicle, org_id or 0))
    load_demo(SERVICES)
    assert (count(Driver, org_id or 0), count(Vehicle, org_id or 0)) == before
    refreshed = demo("GAR00003")
    assert refreshed.adresse and refreshed.code_groupe
    assert refreshed.departement == departement_from_postal_code(refreshed.code_postal)


async def test_driver_search_by_name_matricule_and_departement(http: httpx.AsyncClient) -> None:
    await login(http, MANAGER)
    driver = demo("GAR00007")
    by_matricule = text(await http.get("/utilisateurs", params={"q": "gar00007"}))
    assert f'href="/utilisateurs/{driver.id}"' in by_matricule and driver.nom in by_matricule
    # Case and accents do not matter; several words must all match.
    words = f"{driver.prenom.upper()} {driver.nom.lower()}".replace("É", "E").replace("é", "e")
    by_name = text(await http.get("/utilisateurs", params={"q": words}))
    assert "GAR00007" in by_name
    nothing = text(await http.get("/utilisateurs", params={"q": "zzzqqq"}))
    assert "Aucun utilisateur ne correspond à la recherche." in nothing
    corsica = text(await http.get("/utilisateurs", params={"departement": "2A"}))
    assert "<td>2A</td>" in corsica and "<td>31</td>" not in corsica and "GAR" in corsica


async def test_record_pages_and_vehicle_search(http: httpx.AsyncClient) -> None:
    await login(http, MANAGER)
    with session_scope() as session:
        row = session.execute(select(Vehicle, Driver).join(Driver, Driver.id == Vehicle.driver_id)
                              .where(Driver.matricule.like("GAR%")).order_by(Vehicle.id)).first()
    assert row is not None
    vehicle, holder = row
    driver_page = await http.get(f"/utilisateurs/{holder.id}")
    assert driver_page.status_code == 200
    body = text(driver_page)
    assert holder.matricule in body and f"{holder.departement} – {DEPARTEMENTS[holder.departement or '']}" in body
    assert f'href="/materiels/{vehicle.id}"' in body and vehicle.immatriculation in body
    vehicle_page = text(await http.get(f"/materiels/{vehicle.id}"))
    assert f'href="/utilisateurs/{holder.id}"' in vehicle_page and vehicle.immatriculation in vehicle_page
    assert f"{vehicle.dernier_releve_km:,} km".replace(",", " ") in vehicle_page
    listing = text(await http.get("/materiels", params={"q": vehicle.immatriculation.replace("-", "").lower()}))
    assert f'href="/materiels/{vehicle.id}"' in listing and holder.nom in listing
    by_holder = text(await http.get("/materiels", params={"q": f"{holder.nom} {holder.prenom}"}))
    assert vehicle.immatriculation in by_holder


async def test_another_organisations_records_are_not_found(http: httpx.AsyncClient) -> None:
    driver = demo("GAR00001")
    with session_scope() as session:
        vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.organisation_id == driver.organisation_id))
    await login(http, "gestionnaire@armor.example")
    response = await http.get(f"/utilisateurs/{driver.id}")
    assert response.status_code == 404 and "Cet utilisateur n'existe pas." in text(response)
    response = await http.get(f"/materiels/{vehicle_id}")
    assert response.status_code == 404 and "Ce matériel n'existe pas." in text(response)
    assert "GAR0" not in text(await http.get("/utilisateurs", params={"q": "GAR"}))
    assert "ARM0" in text(await http.get("/utilisateurs"))


async def test_good_drivers_file_creates_then_updates(http: httpx.AsyncClient) -> None:
    org = make_org()
    await login(http, org.manager_email)
    a, b = tag(), tag()
    first = xlsx(DRIVER_HEADERS, driver_row(a), driver_row(b, **{"Code postal": 1000, "Civilité": "monsieur"}))
    done = await upload(http, "/utilisateurs", first)
    assert done.status_code == 303 and done.headers["location"] == "/utilisateurs"
    listing = text(await http.get("/utilisateurs", params={"q": a}))
    assert "2 utilisateurs importés (2 créés, 0 mis à jour)" in listing and a in listing
    folded = text(await http.get("/utilisateurs", params={"q": "GAELLE etienne"}))  # "Gaëlle Étienne"
    assert a in folded and b in folded
    with session_scope() as session:
        rows = {d.matricule: d for d in session.scalars(select(Driver).where(Driver.organisation_id == org.id))}
    assert (rows[a].departement, rows[a].civilite, rows[a].ville) == ("2A", "Mme", "Ajaccio")
    assert (rows[b].code_postal, rows[b].departement, rows[b].civilite) == ("01000", "01", "M.")
    c = tag()
    second = xlsx(DRIVER_HEADERS, driver_row(a, **{"Nom": "Nouveau", "Code postal": "97400"}), driver_row(c))
    done = await upload(http, "/utilisateurs", second)
    assert done.status_code == 303
    assert "2 utilisateurs importés (1 créé, 1 mis à jour)" in text(await http.get("/utilisateurs"))
    with session_scope() as session:
        updated = session.scalars(select(Driver).where(Driver.organisation_id == org.id, Driver.matricule == a)).one()
    assert (updated.nom, updated.departement) == ("Nouveau", "974")
    assert count(Driver, org.id) == 3


async def test_bad_drivers_file_lists_every_error_and_writes_nothing(http: httpx.AsyncClient) -> None:
    org = make_org(count=2)
    await login(http, org.manager_email)
    good, dup = tag(), tag()
    data = xlsx(DRIVER_HEADERS,
                driver_row(good),                                                     # line 2: fine
                driver_row(dup, Email="pas-une-adresse"),                             # line 3
                driver_row(dup, **{"Code postal": "7501", "Civilité": "Dr"}),          # line 4
                driver_row("M0001", Nom=None, **{"Code postal": "98000"}),            # line 5: updates nothing
                driver_row(tag(), Nom='=UPPER("x")', Email="a@b"))                      # line 6
    before = count(Driver, org.id)
    response = await upload(http, "/utilisateurs", data)
    assert response.status_code == 422
    body = text(response)
    for expected in ("Ligne 3, colonne « Email » : adresse e-mail invalide « pas-une-adresse »",
                     "Ligne 4, colonne « Civilité » : civilité « Dr » inconnue : M. ou Mme attendu",
                     "Ligne 4, colonne « Code postal » : code postal invalide « 7501 » : 5 chiffres attendus",
                     f"Ligne 4, colonne « Matricule » : « {dup} » en double : déjà en ligne 3",
                     "Ligne 5, colonne « Nom » : valeur obligatoire",
                     "Ligne 5, colonne « Code postal » : code postal « 98000 » hors des départements français",
                     "Ligne 6, colonne « Nom » : formule refusée",
                     "Ligne 6, colonne « Email » : adresse e-mail invalide « a@b »",
                     "aucune ligne n'a été enregistrée"):
        assert expected in body, expected
    assert "Ligne 2" not in body and "Ligne 6, colonne « Nom » : valeur obligatoire" not in body
    assert count(Driver, org.id) == before
    with session_scope() as session:
        assert session.scalar(select(Driver.nom).where(Driver.organisation_id == org.id,
                                                       Driver.matricule == "M0001")) == "Nom001"
        assert session.scalar(select(Driver.id).where(Driver.matricule == good)) is None


async def test_wrong_header_row_names_the_column(http: httpx.AsyncClient) -> None:
    org = make_org()
    await login(http, org.manager_email)
    headers = [("Téléphone" if h == "Ville" else h) for h in DRIVER_HEADERS]
    response = await upload(http, "/utilisateurs", xlsx(headers, driver_row(tag())))
    assert response.status_code == 422
    body = text(response)
    assert "Ligne 1, colonne « Téléphone » : colonne inconnue (colonne H)" in body
    assert "Ligne 1, colonne « Ville » : colonne manquante (attendue en colonne H)" in body
    assert count(Driver, org.id) == 0


async def test_vehicles_import_good_then_bad_file(http: httpx.AsyncClient) -> None:
    org = make_org(count=1, with_vehicle=False)
    await login(http, org.manager_email)
    good = xlsx(VEHICLE_HEADERS, vehicle_row("fm-476-xw", "M0001"), vehicle_row("1234 ab 56", None))
    done = await upload(http, "/materiels", good)
    assert done.status_code == 303 and done.headers["location"] == "/materiels"
    assert "2 matériels importés (2 créés, 0 mis à jour)" in text(await http.get("/materiels"))
    with session_scope() as session:
        rows = {v.immatriculation: v for v in session.scalars(select(Vehicle).where(Vehicle.organisation_id == org.id))}
    assert set(rows) == {"FM-476-XW", "1234 AB 56"}
    assert rows["FM-476-XW"].driver_id == org.driver_ids[0] and rows["1234 AB 56"].driver_id is None
    assert (rows["FM-476-XW"].type_materiel, rows["FM-476-XW"].dernier_releve_km) == ("VP", 12500)
    driver_page = text(await http.get(f"/utilisateurs/{org.driver_ids[0]}"))
    assert "FM-476-XW" in driver_page

    bad = xlsx(VEHICLE_HEADERS,
               vehicle_row("AB-100-CD", "M0001", Marque="RENAULT"),                        # line 2: fine
               vehicle_row("AB-101-CD", "INCONNU"),                                       # line 3
               vehicle_row("AB 1O1 CD", "M0001", **{"Date de fin": "31/02/2027"}),         # line 4
               vehicle_row("ab101cd", None, **{"Dernier relevé (km)": -5}))               # line 5: duplicate
    before = count(Vehicle, org.id)
    response = await upload(http, "/materiels", bad)
    assert response.status_code == 422
    body = text(response)
    for expected in ("Ligne 3, colonne « Matricule conducteur » : aucun utilisateur de matricule « INCONNU » "
                     "dans votre organisation",
                     "Ligne 4, colonne « Immatriculation » : immatriculation invalide « AB 1O1 CD »",
                     "Ligne 4, colonne « Date de fin » : date inexistante « 31/02/2027 »",
                     "Ligne 5, colonne « Immatriculation » : « AB-101-CD » en double : déjà en ligne 3",
                     "Ligne 5, colonne « Dernier relevé (km) » : nombre supérieur ou égal à 0 attendu"):
        assert expected in body, expected
    assert count(Vehicle, org.id) == before
    with session_scope() as session:
        assert session.scalar(select(Vehicle.marque).where(Vehicle.organisation_id == org.id,
                                                           Vehicle.immatriculation == "AB-100-CD")) is None


async def test_vehicle_driver_must_belong_to_the_organisation(http: httpx.AsyncClient) -> None:
    org, other = make_org(), make_org(count=1)
    await login(http, org.manager_email)
    response = await upload(http, "/materiels", xlsx(VEHICLE_HEADERS, vehicle_row("GH-123-JK", "M0001")))
    assert response.status_code == 422 and "aucun utilisateur de matricule « M0001 »" in text(response)
    assert count(Vehicle, org.id) == 0 and count(Vehicle, other.id) == 1


async def test_unusable_uploads_are_refused_in_french(http: httpx.AsyncClient) -> None:
    org = make_org()
    await login(http, org.manager_email)
    xls = await upload(http, "/utilisateurs", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "ancien.xls")
    assert xls.status_code == 422 and "Le format .xls n'est pas pris en charge" in text(xls)
    empty = await upload(http, "/utilisateurs", xlsx(DRIVER_HEADERS))
    assert empty.status_code == 422 and "aucune ligne de données" in text(empty)
    page = await http.get("/utilisateurs/import")
    missing = await http.post("/utilisateurs/import", data={"csrf_token": csrf_from(page.text)},
                              files={"autre": ("x.txt", b"x", "text/plain")})
    assert missing.status_code == 422 and "Choisissez un fichier .xlsx à importer." in text(missing)
    assert count(Driver, org.id) == 0


async def test_viewer_cannot_import(http: httpx.AsyncClient) -> None:
    await login(http, VIEWER)
    org_id = demo("GAR00001").organisation_id
    before = count(Driver, org_id)
    page = await http.get("/utilisateurs/import")
    assert page.status_code == 200 and "ne permet pas d'importer" in text(page)
    listing = await http.get("/utilisateurs")
    response = await http.post("/utilisateurs/import", data={"csrf_token": csrf_from(listing.text)},
                               files={"fichier": ("f.xlsx", xlsx(DRIVER_HEADERS, driver_row(tag())), XLSX)})
    assert response.status_code == 403 and "Votre rôle ne permet pas cette action." in text(response)
    response = await http.post("/materiels/import", data={"csrf_token": csrf_from(listing.text)},
                               files={"fichier": ("f.xlsx", xlsx(VEHICLE_HEADERS), XLSX)})
    assert response.status_code == 403
    assert count(Driver, org_id) == before


async def test_model_files_are_blank_templates(http: httpx.AsyncClient) -> None:
    await login(http, VIEWER)
    for path, headers in (("/utilisateurs", DRIVER_HEADERS), ("/materiels", VEHICLE_HEADERS)):
        response = await http.get(f"{path}/import/modele.xlsx")
        assert response.status_code == 200 and response.headers["content-type"] == XLSX
        assert "attachment" in response.headers["content-disposition"]
        assert read_xlsx(response.content, expected_headers=headers) == []


# --- Matériels list: «Situation» with its date, filters and sorting (issue 12, item 12) ---

def _rows_plates(page: str) -> list[str]:
    """The plates of the Matériels table, top to bottom."""
    return re.findall(r'<td class="nowrap"><a href="/materiels/\d+">([^<]+)</a></td>', page)


async def test_situation_is_imported_with_its_date(http: httpx.AsyncClient) -> None:
    org = make_org(count=1, with_vehicle=False)
    await login(http, org.manager_email)
    good = xlsx(VEHICLE_HEADERS,
                vehicle_row("AA-001-AA", "M0001", **{"Situation": "active", "Date de situation": "02/01/2024"}),
                vehicle_row("AA-002-AA", None, **{"Situation": "Inactive", "Date de situation": "15/03/2026"}),
                vehicle_row("AA-003-AA", None))
    assert (await upload(http, "/materiels", good)).status_code == 303
    page = text(await http.get("/materiels"))
    assert "<td>Active depuis le 02/01/2024</td>" in page and "<td>Inactive depuis le 15/03/2026</td>" in page
    assert "<td>Active</td>" in page  # no date given: the bare situation
    with session_scope() as session:
        vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.organisation_id == org.id,
                                                             Vehicle.immatriculation == "AA-001-AA"))
    assert "Active depuis le 02/01/2024" in text(await http.get(f"/materiels/{vehicle_id}"))
    bad = await upload(http, "/materiels", xlsx(VEHICLE_HEADERS, vehicle_row("AA-004-AA", None, Situation="Vendue")))
    assert bad.status_code == 422
    assert "Ligne 2, colonne « Situation » : situation « Vendue » inconnue : Active ou Inactive attendu" in text(bad)


async def test_the_list_filters_and_sorts_on_its_columns(http: httpx.AsyncClient) -> None:
    org = make_org(drivers=[{"matricule": "Z", "nom": "Zola", "prenom": "Émile"},
                            {"matricule": "A", "nom": "Arnaud", "prenom": "Anne"}])
    with session_scope() as session:
        session.add_all([
            Vehicle(organisation_id=org.id, immatriculation="BB-200-BB", marque="TOYOTA", mode_gestion="LLD",
                    date_fin=date(2027, 5, 1), driver_id=org.driver_ids[0], situation="Active"),
            Vehicle(organisation_id=org.id, immatriculation="CC-300-CC", marque="RENAULT", mode_gestion="ACHAT",
                    date_fin=date(2026, 1, 1), situation="Inactive", situation_date=date(2026, 1, 1)),
            Vehicle(organisation_id=org.id, immatriculation="AA-100-AA", marque="TOYOTA", mode_gestion="LLD",
                    date_fin=date(2028, 9, 1), driver_id=org.driver_ids[1], situation="Active"),
        ])
    await login(http, org.manager_email)
    default = text(await http.get("/materiels"))
    assert _rows_plates(default) == ["AA-100-AA", "BB-200-BB", "CC-300-CC"]  # by plate, as the seed's ▲ Immat.
    assert '<th aria-sort="ascending">' in default and ">Immat. ▲</a>" in default
    assert 'href="?tri=marque&ordre=asc" title="Trier par marque">Marque</a>' in default

    by_brand = text(await http.get("/materiels", params={"tri": "marque", "ordre": "desc"}))
    assert _rows_plates(by_brand) == ["AA-100-AA", "BB-200-BB", "CC-300-CC"]  # TOYOTA, TOYOTA, RENAULT
    assert ">Marque ▼</a>" in by_brand and 'href="?tri=marque&ordre=asc"' in by_brand
    by_end = text(await http.get("/materiels", params={"tri": "date_fin", "ordre": "asc"}))
    assert _rows_plates(by_end) == ["CC-300-CC", "BB-200-BB", "AA-100-AA"]
    by_user = text(await http.get("/materiels", params={"tri": "utilisateur"}))
    assert _rows_plates(by_user) == ["AA-100-AA", "BB-200-BB", "CC-300-CC"]  # Arnaud, Zola, then none

    toyota = text(await http.get("/materiels", params={"marque": "TOYOTA", "tri": "immat", "ordre": "desc"}))
    assert _rows_plates(toyota) == ["BB-200-BB", "AA-100-AA"]
    assert '<option value="TOYOTA" selected>TOYOTA</option>' in toyota
    # The sort links keep the filters.
    assert 'href="?marque=TOYOTA&tri=gamme&ordre=asc"' in toyota
    inactive = text(await http.get("/materiels", params={"situation": "Inactive"}))
    assert _rows_plates(inactive) == ["CC-300-CC"] and "Inactive depuis le 01/01/2026" in inactive
    assert _rows_plates(text(await http.get("/materiels", params={"gestion": "ACHAT", "marque": "TOYOTA"}))) == []
    assert _rows_plates(text(await http.get("/materiels", params={"tri": "n'importe", "ordre": "x"}))) == [
        "AA-100-AA", "BB-200-BB", "CC-300-CC"]


async def test_the_demo_fleet_shows_situations_with_their_dates(http: httpx.AsyncClient) -> None:
    await login(http, "gestionnaire@garonne.example")
    page = text(await http.get("/materiels"))
    assert re.search(r"<td>Active depuis le \d\d/\d\d/\d{4}</td>", page)
    inactive = text(await http.get("/materiels", params={"situation": "Inactive"}))
    assert _rows_plates(inactive) and "Non affecté" in inactive
    assert "<td>Active" not in inactive
