"""The notices partner API over HTTP: API key (and a broker's only), batches refused whole with each problem,
`Idempotency-Key` replayed once with the first answer, bounded parameters, 404 for another organisation's objects,
OpenAPI docs."""

import httpx
from sqlalchemy import select

from core.db import session_scope
from services.notices.models import Client, Receipt
from tests.support.notices import make_broker, notices_http, notices_server  # noqa: F401 (fixtures)


def _client(number: str, **values: object) -> dict[str, object]:
    return {"number": number, "title": "Mme", "last_name": "Rondele", "first_name": "Caroline",
            "address1": "3 rue des Lilas", "postal_code": "91260", "town": "Juvisy-sur-Orge",
            "email": "caroline@client.example", "notice_by_email": True, "status": "C"} | values


async def test_push_and_read_with_idempotency_and_errors(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http = notices_http
    broker, other = make_broker(), make_broker()
    key, other_key = {"X-API-Key": broker.api_key}, {"Authorization": f"Bearer {other.api_key}"}
    assert (await http.get("/api/v1/clients")).status_code == 401
    assert (await http.get("/api/v1/clients", headers={"X-API-Key": "rk_x_y"})).status_code == 401
    fleet = make_broker(kind="fleet")
    refused = await http.get("/api/v1/clients", headers={"X-API-Key": fleet.api_key})
    assert refused.status_code == 403 and "cabinet de courtage" in refused.json()["detail"]

    # A batch with a refused value is refused whole; the same Idempotency-Key may then serve for the fixed batch.
    bad = {"items": [_client("P24"), _client("P25", email="pas-une-adresse", postal_code="913")]}
    answer = await http.post("/api/v1/clients", json=bad, headers=key | {"Idempotency-Key": "lot-1"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"index": 1, "field": "postal_code", "message": "code postal invalide « 913 » : 5 chiffres attendus"},
        {"index": 1, "field": "email", "message": "adresse e-mail invalide « pas-une-adresse »"}]
    good = {"items": [_client("P24"), _client("P25", title="M. et Mme", notice_by_email=False, email=None)]}
    first = await http.post("/api/v1/clients", json=good, headers=key | {"Idempotency-Key": "lot-1"})
    assert first.status_code == 200 and first.json() == {"created": 2, "updated": 0}
    # Changed since (without a key), then the first call retried: applied once, the first answer again.
    changed = {"items": [_client("P24", email="nouvelle@client.example")]}
    assert (await http.post("/api/v1/clients", json=changed, headers=key)).json() == {"created": 0, "updated": 1}
    again = await http.post("/api/v1/clients", json=good, headers=key | {"Idempotency-Key": "lot-1"})
    assert again.status_code == 200 and again.json() == {"created": 2, "updated": 0}
    assert again.headers["Idempotent-Replayed"] == "true"
    with session_scope() as session:
        stmt = select(Client.number, Client.email).where(Client.organisation_id == broker.id)
        emails = {number: email for number, email in session.execute(stmt)}
    assert emails == {"P24": "nouvelle@client.example", "P25": None}
    reused = await http.post("/api/v1/clients", json=changed, headers=key | {"Idempotency-Key": "lot-1"})
    assert reused.status_code == 409
    # Keys are per API key: another partner's "lot-1" is its own.
    assert (await http.post("/api/v1/clients", json=good, headers=other_key | {"Idempotency-Key": "lot-1"})
            ).json() == {"created": 2, "updated": 0}

    contracts = {"items": [{"number": "ES0690024410", "client_number": "P24", "entity_code": "SIEGE",
                            "insurer": "CIGA - AXA", "category": "Bris de machine"},
                           {"number": "K2", "client_number": "P99", "entity_code": "AILLEURS",
                            "insurer": "CIGA", "category": "Auto"}]}
    answer = await http.post("/api/v1/contracts", json=contracts, headers=key)
    assert [(p["index"], p["field"]) for p in answer.json()["detail"]] == [(1, "client_number"), (1, "entity_code")]
    contracts["items"].pop()
    assert (await http.post("/api/v1/contracts", json=contracts, headers=key)).json() == {"created": 1, "updated": 0}
    receipts = {"items": [{"number": "Q-2027-1", "contract_number": "ES0690024410", "period_start": "2027-01-01",
                           "period_end": "2027-12-31", "debit_month": "2027-01", "collection": "confie",
                           "receipt_type": "terme", "premium_ht": "412.50", "taxes": 37.13, "fees": "8"}]}
    assert (await http.post("/api/v1/receipts", json=receipts, headers=key | {"Idempotency-Key": "q"})
            ).json() == {"created": 1, "updated": 0}
    wrong_total = {"items": [receipts["items"][0] | {"total_ttc": "500.00"}]}
    assert (await http.post("/api/v1/receipts", json=wrong_total, headers=key)).json()["detail"][0]["field"] \
        == "total_ttc"
    typed_wrong = await http.post("/api/v1/receipts", json={"items": [receipts["items"][0] | {"collection": "x"}]},
                                  headers=key)
    assert typed_wrong.status_code == 422
    assert (await http.post("/api/v1/clients", json={"items": []}, headers=key)).status_code == 422
    too_many = {"items": [_client(f"N{n}") for n in range(1001)]}
    assert (await http.post("/api/v1/clients", json=too_many, headers=key)).status_code == 422

    # Reading back, scoped to the key's organisation.
    with session_scope() as session:
        client_id = session.scalar(select(Client.id).where(Client.organisation_id == broker.id,
                                                           Client.number == "P24"))
        receipt_id = session.scalar(select(Receipt.id).where(Receipt.organisation_id == broker.id))
    one = (await http.get(f"/api/v1/clients/{client_id}", headers=key)).json()
    assert (one["number"], one["title"], one["notice_by_email"]) == ("P24", "Mme", True)
    assert (await http.get(f"/api/v1/clients/{client_id}", headers=other_key)).status_code == 404
    assert (await http.get(f"/api/v1/receipts/{receipt_id}", headers=other_key)).status_code == 404
    receipt = (await http.get(f"/api/v1/receipts/{receipt_id}", headers=key)).json()
    assert (receipt["total_ttc"], receipt["debit_month"], receipt["client_number"]) == ("457.63", "2027-01", "P24")
    listed = (await http.get("/api/v1/receipts", params={"effect_from": "2027-01-01"}, headers=key)).json()
    assert [r["number"] for r in listed] == ["Q-2027-1"]
    assert [c["number"] for c in (await http.get("/api/v1/clients", params={"q": "p25"}, headers=key)).json()] \
        == ["P25"]
    assert [c["number"] for c in (await http.get("/api/v1/contracts", headers=key)).json()] == ["ES0690024410"]
    assert [e["code"] for e in (await http.get("/api/v1/entities", headers=key)).json()] == ["SIEGE"]
    assert [c["number"] for c in (await http.get("/api/v1/clients", headers=other_key)).json()] == ["P24", "P25"]
    for bad_query in ({"per_page": 501}, {"page": 0}, {"page": 10**9}):
        assert (await http.get("/api/v1/clients", params=bad_query, headers=key)).status_code == 422
    assert (await http.get(f"/api/v1/clients/{2**63}", headers=key)).status_code == 422
    assert (await http.get("/api/v1/receipts", params={"effect_from": "2027-02-30"}, headers=key)).status_code == 422


async def test_openapi_documents_the_partner_api(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    spec = (await notices_http.get("/api/openapi.json")).json()
    for path in ("/api/v1/clients", "/api/v1/contracts", "/api/v1/receipts", "/api/v1/entities",
                 "/api/v1/clients/{client_id}"):
        assert path in spec["paths"]
    push = spec["paths"]["/api/v1/clients"]["post"]
    assert any(p["name"] == "idempotency-key" for p in push["parameters"])
    assert {"409", "422"} <= set(push["responses"])
    assert (await notices_http.get("/api/docs")).status_code == 200
