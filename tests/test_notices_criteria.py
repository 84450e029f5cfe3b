"""Every criterion of «Avis d'échéances» acts on which receipts a «Mail» makes notices of: «Quittances» and
«Acomptes» by the receipt's «Nature», «Acomptes affectés des contrats sans quittance en arriéré» by the «Reste dû» of
the contract's earlier receipts, «Pollicitation» with the client's «Sans Pollicitation», «Sans édition des avances
Cabinet»; the new receipt values through the Excel import, the partner API and the demo; the run page over HTTP."""

import re
from datetime import date
from decimal import Decimal

import httpx
from sqlalchemy import select

from core.db import session_scope
from core.excel import ExcelIssue
from core.models import Organisation
from core.ui import today_paris
from services.notices.demo import SLUG
from services.notices.models import LegalEntity, Receipt
from services.notices.service import imports, runs
from services.notices.service.records import CLIENTS, CONTRACTS, RECEIPTS, SaveReport
from tests.support.notices import (  # noqa: F401 (fixtures)
    XLSX,
    Broker,
    client_item,
    contract_item,
    make_broker,
    notices_http,
    notices_server,
    receipt_item,
    save,
    xlsx,
)
from tests.support.web import csrf_from, login, text

TODAY = date(2026, 12, 3)
QUITTANCES = ["terme", "comptant"]


def _criteria(organisation_id: int, entity_id: int, **values: object) -> runs.Criteria:
    raw = runs.defaults(TODAY) | {"entity_id": str(entity_id), "debit_to": "12/2099", "effect_to": "31/12/2099",
                                  "entry_to": "31/12/2099"} | values
    with session_scope() as session:
        checked = runs.check_form(session, organisation_id, raw)
    assert checked.criteria is not None, checked.errors
    return checked.criteria


def _planned(broker: Broker, **values: object) -> list[str]:
    """The receipts a «Mail» with these criteria makes notices of (numbers, in order)."""
    criteria = _criteria(broker.id, broker.entities["SIEGE"], **values)
    with session_scope() as session:
        found = runs.select_receipts(session, broker.id, criteria)
        stmt = select(Receipt.id, Receipt.number).where(Receipt.organisation_id == broker.id)
        numbers = {receipt_id: number for receipt_id, number in session.execute(stmt)}
    assert {c.excluded_reason for c in found} <= {None}, "a criterion is a filter, never a reason to leave out"
    return sorted(numbers[c.receipt_id] for c in found)


def _broker(*clients: dict[str, object]) -> Broker:
    broker = make_broker()
    save(broker, CLIENTS, *clients)
    save(broker, CONTRACTS, *(contract_item(f"K{c['number']}", str(c["number"])) for c in clients))
    return broker


def test_quittances_and_each_deposit_kind_follow_their_checkboxes() -> None:
    broker = _broker(client_item("D1"))
    save(broker, RECEIPTS, receipt_item("Q1", "KD1"), receipt_item("Q2", "KD1", receipt_type="comptant"),
         receipt_item("A1", "KD1", kind="acompte_affecte"), receipt_item("A2", "KD1", kind="acompte_libre"),
         receipt_item("A3", "KD1", kind="appel_acomptes"))
    assert _planned(broker) == ["Q1", "Q2"]  # the form's defaults: Terme and Comptant, no deposit
    assert _planned(broker, deposits=["affectes"]) == ["A1", "Q1", "Q2"]
    assert _planned(broker, deposits=["libres"]) == ["A2", "Q1", "Q2"]
    assert _planned(broker, deposits=["appel"]) == ["A3", "Q1", "Q2"]
    assert _planned(broker, receipt_types=["terme"], deposits=["affectes", "libres", "appel"]) == [
        "A1", "A2", "A3", "Q1"]
    # Deposits only: no «Quittances» box is needed any more; neither box at all is refused, in French.
    assert _planned(broker, receipt_types=[], deposits=["appel"]) == ["A3"]
    with session_scope() as session:
        refused = runs.check_form(session, broker.id, runs.defaults(TODAY) | {
            "entity_id": str(broker.entities["SIEGE"]), "receipt_types": [], "deposits": []})
        unknown = runs.check_form(session, broker.id, runs.defaults(TODAY) | {
            "entity_id": str(broker.entities["SIEGE"]), "deposits": ["avoirs"]})
    assert refused.errors == {"receipt_types": "Cochez au moins un type de quittance (Terme, Comptant) ou d'acompte."}
    assert unknown.errors == {"deposits": "Valeur inconnue : avoirs."}


def test_affected_deposits_of_contracts_in_arrears_wait_with_the_option() -> None:
    broker = _broker(client_item("D1"), client_item("D2"), client_item("D3"))
    save(broker, RECEIPTS,
         # KD1: an earlier receipt still owing something → «en arriéré»
         receipt_item("Q1", "KD1", period_start=date(2026, 11, 1), period_end=date(2026, 11, 30),
                      outstanding="120.00"),
         receipt_item("A1", "KD1", kind="acompte_affecte"),
         # KD2: the earlier receipt is settled
         receipt_item("Q2", "KD2", period_start=date(2026, 11, 1), period_end=date(2026, 11, 30), outstanding="0"),
         receipt_item("A2", "KD2", kind="acompte_affecte"),
         # KD3: what is owed falls due after the deposit: not in arrears; an unpaid deposit does not count either
         receipt_item("Q3", "KD3", period_start=date(2027, 6, 1), period_end=date(2027, 6, 30), outstanding="50"),
         receipt_item("A3", "KD3", kind="acompte_affecte"),
         receipt_item("L3", "KD3", kind="acompte_libre", period_start=date(2026, 10, 1),
                      period_end=date(2026, 10, 31), outstanding="10"))
    ticked = {"receipt_types": [], "deposits": ["affectes", "libres"]}
    assert _planned(broker, **ticked) == ["A1", "A2", "A3", "L3"]
    assert _planned(broker, **ticked, options=["deposits_no_arrears"]) == ["A2", "A3", "L3"]
    # The option concerns «Acomptes affectés» only: the receipt in arrears itself is still noticed.
    assert _planned(broker, deposits=["affectes"], options=["deposits_no_arrears"]) == [
        "A2", "A3", "Q1", "Q2", "Q3"]


def test_proposals_only_with_pollicitation_and_never_for_a_client_sans_pollicitation() -> None:
    broker = _broker(client_item("D1"), client_item("D2", no_solicitation=True))
    save(broker, RECEIPTS, receipt_item("Q1", "KD1"), receipt_item("P1", "KD1", is_proposal=True),
         receipt_item("Q2", "KD2"), receipt_item("P2", "KD2", is_proposal=True))
    assert _planned(broker) == ["Q1", "Q2"]
    assert _planned(broker, options=["pollicitation"]) == ["P1", "Q1", "Q2"]


def test_broker_advances_left_out_with_sans_edition_des_avances_cabinet() -> None:
    broker = _broker(client_item("D1"))
    save(broker, RECEIPTS, receipt_item("Q1", "KD1"), receipt_item("Q2", "KD1", broker_advance=True))
    assert _planned(broker) == ["Q1", "Q2"]
    assert _planned(broker, options=["no_broker_advances"]) == ["Q1"]
    assert _planned(broker, options=["no_broker_advances", "non_positive", "pollicitation"]) == ["Q1"]


async def test_the_run_page_counts_what_each_option_selects(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    """Over HTTP as a manager: the same form, one option more, another count of notices on the run page; the
    receipts list shows what the options read."""
    http = notices_http
    broker = _broker(client_item("D1"), client_item("D2", email=None))
    due = today_paris()
    save(broker, RECEIPTS, receipt_item("Q1", "KD1", period_start=due, period_end=due.replace(year=due.year + 1)),
         receipt_item("Q2", "KD2", period_start=due, period_end=due.replace(year=due.year + 1)),
         receipt_item("AV1", "KD1", period_start=due, period_end=due.replace(year=due.year + 1),
                      broker_advance=True, kind="appel_acomptes"),
         receipt_item("P1", "KD1", period_start=due, period_end=due.replace(year=due.year + 1), is_proposal=True,
                      outstanding="10.00"))
    await login(http, broker.manager)
    form = await http.get("/editions")
    assert "Sans édition des avances Cabinet" in text(form)
    assert "sans effet sur la sélection" not in text(form)
    base = {"csrf_token": csrf_from(form.text), "entity_id": str(broker.entities["SIEGE"]),
            "collection": ["confie", "direct"], "receipt_types": ["terme", "comptant"], "debit_from": "01/1900",
            "debit_to": "12/2099", "entry_from": "01/01/1900", "entry_to": "31/12/2099",
            "effect_from": "01/01/1900", "effect_to": "31/12/2099", "fixed_fee": "0"}

    async def planned(**values: object) -> tuple[int, str]:
        started = await http.post("/editions", data=base | values)
        assert started.status_code == 303, text(started)
        page = " ".join(re.sub(r"<[^>]+>", " ", text(await http.get(started.headers["location"]))).split())
        found = re.search(r"Avis à fabriquer (\d+)", page)
        assert found is not None, page
        return int(found.group(1)), page

    assert (await planned())[0] == 1  # Q1 (Q2: no e-mail, on the list of the clients left out)
    assert (await planned(deposits=["appel"]))[0] == 2
    assert (await planned(deposits=["appel"], options=["no_broker_advances"]))[0] == 1
    count, page = await planned(options=["pollicitation"])
    assert count == 2 and "Pas d'adresse e-mail" in page and "Clients laissés de côté 1" in page

    receipts = " ".join(re.sub(r"<[^>]+>", " ", text(await http.get("/quittances"))).split())
    assert "Appel d'acomptes Avance cabinet" in receipts and "Quittance Pollicitation" in receipts
    assert "10,00" in receipts
    only = text(await http.get("/quittances", params={"nature": "appel_acomptes"}))
    assert 'data-quittance="AV1"' in only and 'data-quittance="Q1"' not in only


def _import(broker: Broker, data: bytes) -> SaveReport | list[ExcelIssue]:
    with session_scope() as session:
        return imports.import_file(session, organisation_id=broker.id, kind=RECEIPTS, data=data, today=TODAY)


def _receipts(broker: Broker) -> dict[str, tuple[str, Decimal, bool, bool]]:
    with session_scope() as session:
        return {r.number: (r.kind, r.outstanding, r.is_proposal, r.broker_advance) for r in session.scalars(
            select(Receipt).where(Receipt.organisation_id == broker.id))}


def test_import_reads_nature_reste_du_pollicitation_and_avance_cabinet() -> None:
    broker = _broker(client_item("D1"))
    assert imports.headers(RECEIPTS)[-4:] == ["Nature", "Reste dû", "Pollicitation", "Avance cabinet"]
    row: list[object] = ["KD1", "01/01/2027", "31/12/2027", None, None, None, "Confié", "Terme", "412,50", "37,13",
                         "8", None, None]
    assert _import(broker, xlsx(RECEIPTS, ["Q1", *row, "acompte affecté", "12,50", "oui", "x"],
                                ["Q2", *row, "appel_acomptes", None, None, None])) == SaveReport(2, 0)
    # A file made with the former model (without the four last columns) still imports: quittances, nothing owed.
    former = imports.headers(RECEIPTS)[:-4]
    assert _import(broker, xlsx(RECEIPTS, ["Q3", *row], header_row=former)) == SaveReport(1, 0)
    expected = {"Q1": ("acompte_affecte", Decimal("12.50"), True, True),
                "Q2": ("appel_acomptes", Decimal("0.00"), False, False),
                "Q3": ("quittance", Decimal("0.00"), False, False)}
    assert _receipts(broker) == expected

    bad = _import(broker, xlsx(RECEIPTS, ["Q1", *row, "Avoir", "-5", "peut-être", "Non"],
                               ["Q4", *row, "Appel d'acomptes", "900", None, None]))
    assert isinstance(bad, list)
    assert [str(issue) for issue in bad] == [
        "Ligne 2, colonne « Nature » : « Avoir » : Quittance, Acompte affecté, Acompte libre ou Appel d'acomptes "
        "attendu",
        "Ligne 2, colonne « Reste dû » : reste dû négatif (-5,00) : 0 pour une quittance soldée",
        "Ligne 2, colonne « Pollicitation » : « peut-être » : Oui ou Non attendu",
        "Ligne 3, colonne « Reste dû » : reste dû 900,00 supérieur à la Prime TTC 457,63"]
    assert _receipts(broker) == expected  # nothing written


async def test_partner_api_round_trips_the_new_receipt_values(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http, broker = notices_http, _broker(client_item("D1"))
    key = {"X-API-Key": broker.api_key}
    item = {"number": "A-1", "contract_number": "KD1", "period_start": "2027-01-01", "period_end": "2027-12-31",
            "collection": "confie", "receipt_type": "terme", "premium_ht": "100.00", "kind": "acompte_libre",
            "outstanding": "40.5", "is_proposal": True, "broker_advance": True}
    plain = {k: v for k, v in item.items() if k not in ("kind", "outstanding", "is_proposal", "broker_advance")}
    pushed = await http.post("/api/v1/receipts", json={"items": [item, plain | {"number": "Q-1"}]}, headers=key)
    assert pushed.status_code == 200 and pushed.json() == {"created": 2, "updated": 0}
    listed = {r["number"]: r for r in (await http.get("/api/v1/receipts", headers=key)).json()}
    assert [listed["A-1"][f] for f in ("kind", "outstanding", "is_proposal", "broker_advance")] == [
        "acompte_libre", "40.50", True, True]
    assert [listed["Q-1"][f] for f in ("kind", "outstanding", "is_proposal", "broker_advance")] == [
        "quittance", "0.00", False, False]
    one = (await http.get(f"/api/v1/receipts/{listed['A-1']['id']}", headers=key)).json()
    assert one["kind"] == "acompte_libre"

    wrong_kind = await http.post("/api/v1/receipts", json={"items": [item | {"kind": "avoir"}]}, headers=key)
    assert wrong_kind.status_code == 422
    too_much = await http.post("/api/v1/receipts", json={"items": [item | {"outstanding": "500"}]}, headers=key)
    assert too_much.status_code == 422 and too_much.json()["detail"] == [
        {"index": 0, "field": "outstanding", "message": "reste dû 500,00 supérieur à la Prime TTC 100,00"}]
    assert _receipts(broker)["A-1"] == ("acompte_libre", Decimal("40.50"), True, True)

    spec = (await http.get("/api/openapi.json")).json()["components"]["schemas"]
    assert {"kind", "outstanding", "is_proposal", "broker_advance"} <= set(spec["ReceiptIn"]["properties"])
    assert {"kind", "outstanding", "is_proposal", "broker_advance"} <= set(spec["ReceiptOut"]["properties"])
    assert "Acomptes" in spec["ReceiptIn"]["properties"]["kind"]["description"]


def test_demo_each_option_changes_what_a_default_run_selects(database: str) -> None:
    """`make run`: on the demo broker, the form's defaults then each option, one receipt more or fewer each time."""
    with session_scope() as session:
        organisation_id, entity_id = session.execute(
            select(LegalEntity.organisation_id, LegalEntity.id)
            .join(Organisation, Organisation.id == LegalEntity.organisation_id)
            .where(Organisation.slug == SLUG, LegalEntity.code == "LAMBERT")).one()

    def selected(**values: object) -> int:
        raw = runs.defaults(today_paris()) | {"entity_id": str(entity_id)} | values
        with session_scope() as session:
            checked = runs.check_form(session, organisation_id, raw)
            assert checked.criteria is not None, checked.errors
            return len(runs.select_receipts(session, organisation_id, checked.criteria))

    base = selected()
    assert selected(deposits=["affectes"]) == base + 2
    assert selected(deposits=["affectes"], options=["deposits_no_arrears"]) == base + 1
    assert selected(deposits=["libres"]) == base + 1
    assert selected(deposits=["appel"]) == base + 1
    assert selected(options=["pollicitation"]) == base + 1  # the other proposal's client is «Sans Pollicitation»
    assert selected(options=["no_broker_advances"]) == base - 1
