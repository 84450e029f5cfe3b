"""The partner APIs under a property-based run (schemathesis): whatever a partner sends, never a 5xx.

Each operation of the services' OpenAPI (`/api/v1/...`: campaigns, removals, notices; interventions has no API
yet) gets a bounded, deterministic batch of generated requests, valid and invalid, with the demo partner key of its
service. Requests run in-process against the ASGI app, each in a transaction rolled back at the end of the run, so
the fuzzer never changes the demo data the other tests read.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from sqlalchemy.orm import Session

from core.auth import db_session
from core.db import get_engine
from services.campaigns.app import app as campaigns_app
from services.campaigns.demo_accounts import API_KEYS as CAMPAIGNS_KEYS
from services.notices.app import app as notices_app
from services.notices.demo import API_KEYS as NOTICES_KEYS
from services.removals.app import app as removals_app
from services.removals.demo import API_KEYS as REMOVALS_KEYS
from tests.support.web import login, text

EXAMPLES = 20  # per operation, besides the coverage phase's boundary values: ~1,300 requests in all
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
APPS: dict[str, tuple[FastAPI, str]] = {
    "campaigns": (campaigns_app, CAMPAIGNS_KEYS["garonne"]),
    "removals": (removals_app, REMOVALS_KEYS["tramosa"]),
    "notices": (notices_app, next(iter(NOTICES_KEYS.values()))),
}


def _schema(app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", app).include(path_regex=r"^/api/v1/")


campaigns = _schema(campaigns_app)
removals = _schema(removals_app)
notices = _schema(notices_app)


@pytest.fixture(scope="module", autouse=True)
def rolled_back(database: str) -> Iterator[None]:
    """Every request's session joins one outer transaction (its commit is a savepoint), rolled back at the end."""
    connection = get_engine().connect()
    outer = connection.begin()

    def session() -> Iterator[Session]:
        with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    for app, _key in APPS.values():
        app.dependency_overrides[db_session] = session
    try:
        yield
    finally:
        for app, _key in APPS.values():
            app.dependency_overrides.pop(db_session, None)
        outer.rollback()
        connection.close()


def _no_server_error(case: Any, key: str) -> None:
    response = case.call(headers={"X-API-Key": key})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query} → " \
        f"{response.status_code}: {response.text[:500]}"


@campaigns.parametrize()
@FUZZ
def test_campaigns_api(case: Any) -> None:
    _no_server_error(case, APPS["campaigns"][1])


@removals.parametrize()
@FUZZ
def test_removals_api(case: Any) -> None:
    _no_server_error(case, APPS["removals"][1])


@notices.parametrize()
@FUZZ
def test_notices_api(case: Any) -> None:
    _no_server_error(case, APPS["notices"][1])


async def _get(app: FastAPI, key: str, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(url, headers={"X-API-Key": key})


async def test_the_fuzzers_numbers_get_a_french_422() -> None:
    """The requests of the issue that reached PostgreSQL and answered 500."""
    drivers = await _get(campaigns_app, APPS["campaigns"][1],
                         "/api/v1/drivers?per_page=-1006181851374&page=-549755813888")
    assert drivers.status_code == 422
    assert [e["msg"] for e in drivers.json()["detail"]] == [
        "Paramètre « page » : 1 au minimum (reçu « -549755813888 »).",
        "Paramètre « per_page » : 1 au minimum (reçu « -1006181851374 »)."]
    page = await _get(removals_app, APPS["removals"][1], "/api/v1/mandates?page=619054796868974080")
    assert page.status_code == 422
    assert page.json()["detail"][0]["msg"] == "Paramètre « page » : 100000 au maximum (reçu « 619054796868974080 »)."
    mandate = await _get(removals_app, APPS["removals"][1], "/api/v1/mandates/389236052102035164368685666576367616")
    assert mandate.status_code == 422
    assert mandate.json()["detail"][0]["msg"].startswith("« mandate_id » dans l'adresse : 9223372036854775807 au max")
    word = await _get(removals_app, APPS["removals"][1], "/api/v1/mandates/douze")
    assert word.json()["detail"][0]["msg"] == "« mandate_id » dans l'adresse : nombre entier attendu (reçu « douze »)."
    # A value PostgreSQL cannot hold, past the schemas: refused, said in French, nothing written.
    nul = await _get(removals_app, APPS["removals"][1], "/api/v1/mandates?vin=%00")
    assert nul.status_code == 422 and "caractère nul" in nul.json()["detail"]


async def test_a_page_says_it_in_french_too() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=notices_app), base_url="http://test") as client:
        await login(client, "gestionnaire@lambert-assurances.example")
        page = await client.get(f"/clients/{2**63}")
    assert page.status_code == 422
    assert "« client_id » dans l'adresse : 9223372036854775807 au maximum" in text(page)
