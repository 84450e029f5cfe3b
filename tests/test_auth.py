"""Manager login, CSRF, roles, organisation scoping and partner API keys, over HTTP."""

import httpx
from sqlalchemy import func, select

from core.db import session_scope
from core.models import Organisation, User
from services.campaigns.demo_accounts import API_KEYS
from services.campaigns.models import Driver, TestMail
from tests.support.web import csrf_from, login, text


def _garonne_test_mail() -> int:
    with session_scope() as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == "garonne"))
        driver = session.scalars(select(Driver).where(Driver.organisation_id == org_id)).first()
        assert org_id and driver
        test_mail = TestMail(organisation_id=org_id, driver_id=driver.id, subject="Privé", body="Corps")
        session.add(test_mail)
        session.flush()
        return test_mail.id


def _count_test_mails() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(TestMail)) or 0


async def test_passwords_are_argon2_hashes() -> None:
    with session_scope() as session:
        hashes = session.scalars(select(User.password_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


async def test_wrong_password_is_refused(http: httpx.AsyncClient) -> None:
    refused = await login(http, "gestionnaire@garonne.example", "mauvais")
    assert refused.status_code == 401 and "E-mail ou mot de passe incorrect." in text(refused)
    assert (await http.get("/envois-test")).status_code == 303  # still anonymous → login page


async def test_pages_require_login_and_next_stays_local(http: httpx.AsyncClient) -> None:
    anonymous = await http.get("/envois-test")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/envois-test"
    page = await http.get("/login")
    response = await http.post("/login", data={"email": "gestionnaire@garonne.example", "password": "relais-demo",
                                               "csrf_token": csrf_from(page.text), "next": "//evil.example/"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_missing_or_wrong_csrf_token_is_refused(http: httpx.AsyncClient) -> None:
    no_token = await http.post("/login", data={"email": "gestionnaire@garonne.example", "password": "relais-demo"})
    assert no_token.status_code == 403 and "Jeton CSRF" in text(no_token)
    await login(http, "gestionnaire@garonne.example")
    before = _count_test_mails()
    forged = await http.post("/envois-test", data={"driver_id": "1", "subject": "S", "body": "B",
                                                   "csrf_token": "forged"})
    assert forged.status_code == 403
    assert _count_test_mails() == before


async def test_a_user_never_sees_another_organisations_records(http: httpx.AsyncClient) -> None:
    test_mail_id = _garonne_test_mail()
    await login(http, "gestionnaire@armor.example")
    for path in (f"/envois-test/{test_mail_id}", f"/envois-test/{test_mail_id}/statut"):
        response = await http.get(path)
        assert response.status_code == 404 and "n'existe pas" in text(response)
    listing = await http.get("/envois-test")
    assert "Privé" not in text(listing) and "GAR0" not in text(listing)


async def test_viewer_role_cannot_send(http: httpx.AsyncClient) -> None:
    await login(http, "lecture@garonne.example")
    page = await http.get("/envois-test")
    assert page.status_code == 200
    before = _count_test_mails()
    response = await http.post("/envois-test", data={"driver_id": "1", "subject": "S", "body": "B",
                                                     "csrf_token": csrf_from(page.text)})
    assert response.status_code == 403 and "Votre rôle ne permet pas cette action." in text(response)
    assert _count_test_mails() == before


async def test_partner_api_keys_are_required_and_scoped(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/drivers")).status_code == 401
    assert (await http.get("/api/v1/drivers", headers={"X-API-Key": "rk_demogaronne_wrong"})).status_code == 401
    garonne = {"Authorization": f"Bearer {API_KEYS['garonne']}"}
    drivers = (await http.get("/api/v1/drivers?per_page=500", headers=garonne)).json()
    assert len(drivers) == 300 and all(d["matricule"].startswith("GAR") for d in drivers)
    test_mail_id = _garonne_test_mail()
    assert (await http.get(f"/api/v1/test-mails/{test_mail_id}", headers=garonne)).status_code == 200
    other = await http.get(f"/api/v1/test-mails/{test_mail_id}", headers={"X-API-Key": API_KEYS["armor"]})
    assert other.status_code == 404
