"""The notices manager screens over HTTP, logged in: the demo broker's lists and client record, the Excel import
page (model file, refusal with line and column, success), roles, the entities form, the notice preview and a stored
notice in the client's history."""

import io
import re
from datetime import date

import httpx
import openpyxl
import pytest
from sqlalchemy import func, not_, select

from core.db import session_scope
from core.models import Organisation
from services.notices.demo import API_KEYS, CLIENTS, SLUG, USERS, load_notices_demo
from services.notices.models import Client, Contract, LegalEntity, Receipt
from services.notices.service import documents
from services.notices.service.imports import headers
from services.notices.service.records import CLIENTS as CLIENT_KIND
from tests.support.notices import (  # noqa: F401 (fixtures)
    XLSX,
    client_item,
    make_broker,
    notices_http,
    notices_server,
    pdf_text,
    save,
    xlsx,
)
from tests.support.web import csrf_from, login, text

MANAGER, ADMIN, VIEWER = (u[0] for u in USERS)


@pytest.fixture(scope="module")
def demo(database: str) -> int:
    """The demo broker, loaded as `make run` will (twice: it is idempotent)."""
    for _ in range(2):
        with session_scope() as session:
            load_notices_demo(session)
    with session_scope() as session:
        return session.scalars(select(Organisation.id).where(Organisation.slug == SLUG)).one()


def test_demo_data_has_the_expected_shape(demo: int) -> None:
    today = date.today()
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    with session_scope() as session:
        def count(model: type[Client] | type[Contract] | type[Receipt] | type[LegalEntity], *where: object) -> int:
            return session.scalar(select(func.count()).select_from(model).where(model.organisation_id == demo,
                                                                                *where)) or 0  # type: ignore[arg-type]

        assert count(LegalEntity) == 2 and count(Client) == CLIENTS
        assert count(Client, Client.email.is_(None)) > 10 and count(Client, Client.notice_by_email.is_(False)) > 30
        assert count(Client, Client.notice_by_email.is_(True), Client.email.is_(None)) > 0
        assert count(Contract) > CLIENTS
        regular = Receipt.number.regexp_match(r"^Q\d{6}-LA\d{6}$")  # one per contract, due next month
        receipts = count(Receipt, regular)
        assert receipts == count(Contract)
        assert count(Receipt, regular, Receipt.effect_date >= next_month,
                     Receipt.effect_date < date(next_month.year + next_month.month // 12,
                                                next_month.month % 12 + 1, 1)) == receipts
        # and what the run's «Acomptes» and «Type d'édition» options act on
        specials = session.execute(select(Receipt.kind, Receipt.is_proposal, Receipt.broker_advance,
                                          Receipt.outstanding > 0).where(Receipt.organisation_id == demo, not_(regular))
                                   .order_by(Receipt.number)).all()
        assert sorted(specials) == sorted([("acompte_affecte", False, False, False)] * 2 + [
            ("acompte_libre", False, False, False), ("appel_acomptes", False, False, False),
            ("quittance", True, False, False), ("quittance", True, False, False),
            ("quittance", False, True, False), ("quittance", False, False, True)])
    assert set(API_KEYS) == {SLUG} and {u[3] for u in USERS} == {"manager", "admin", "viewer"}


async def test_manager_lists_searches_and_reads_a_client_record(notices_http: httpx.AsyncClient,  # noqa: F811
                                                                demo: int) -> None:
    http = notices_http
    assert (await http.get("/clients")).status_code == 303  # to the login page
    assert (await login(http, MANAGER)).status_code == 303
    home = text(await http.get("/"))
    assert "Cabinet Lambert Assurances" in home and f"<dd>{CLIENTS}</dd>" in home
    entities = text(await http.get("/entites"))
    assert "Lambert Assurances Entreprises" in entities and "NON SOUMIS A TVA" in entities
    assert "FR00999999999" in entities and "/entites/" not in entities.replace('href="/entites"', "")

    with session_scope() as session:
        missing = session.scalars(select(Client).where(Client.organisation_id == demo, Client.email.is_(None),
                                                       Client.notice_by_email.is_(True)).limit(1)).one()
        someone = session.scalars(select(Client).where(Client.organisation_id == demo, Client.email.is_not(None),
                                                       Client.notice_by_email.is_(True)).limit(1)).one()
    listed = text(await http.get("/clients", params={"q": someone.number}))
    assert f'data-dossier="{someone.number}"' in listed and (someone.email or "?") in listed
    no_email = text(await http.get("/clients", params={"sans_email": "1", "ae": "oui"}))
    assert f'data-dossier="{missing.number}"' in no_email and "sans e-mail" in no_email
    assert f'data-dossier="{someone.number}"' not in no_email
    record = text(await http.get(f"/clients/{missing.id}"))
    assert '<dt>Email</dt><dd id="client-email">Adresse mail manquante</dd>' in record
    assert '<dt>AE par mail</dt><dd id="client-ae">Oui</dd>' in record
    assert "ses avis seront édités sur papier" in record
    assert "Historique des avis d'échéance" in record and "Aucun avis d'échéance n'a encore été édité" in record
    assert "Aperçu de l'avis" in record

    contracts = text(await http.get("/contrats", params={"q": "Mutuelle du Rhône"}))
    assert "Mutuelle du Rhône" in contracts and "Garantie Alpine" not in contracts
    receipts = text(await http.get("/quittances", params={"encaissement": "direct", "type": "terme"}))
    assert "<td>Direct</td>" in receipts and "<td>Confié</td>" not in receipts and "<td>Terme</td>" in receipts
    assert "Aucune quittance" in text(await http.get("/quittances", params={"effet_au": "2000-01-01"}))
    assert "Aucune quittance" not in text(await http.get("/quittances", params={"effet_du": "pas-une-date"}))

    other = make_broker()
    save(other, CLIENT_KIND, client_item("X1"))
    with session_scope() as session:
        other_client = session.scalars(select(Client.id).where(Client.organisation_id == other.id)).one()
    assert (await http.get(f"/clients/{other_client}")).status_code == 404
    assert (await http.get(f"/clients/{2**63}")).status_code == 422


async def test_import_page_model_file_refusal_and_success(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http, broker = notices_http, make_broker()
    await login(http, broker.manager)
    page = await http.get("/import")
    assert "Importer des clients, des contrats, des quittances" in text(page)
    model = await http.get("/import/clients/modele.xlsx")
    assert model.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(model.content)).active
    assert sheet is not None and [c.value for c in sheet[1]] == headers(CLIENT_KIND)
    row = ["P5", "Dr", "Barbereau", "Catherine", "1 avenue des sables", None, "91350", "Crigny", "mauvais", "Oui",
           None, None, "C", None]
    refused = await http.post("/import/clients", data={"csrf_token": csrf_from(page.text)},
                              files={"fichier": ("clients.xlsx", xlsx(CLIENT_KIND, row), XLSX)})
    assert refused.status_code == 422
    assert "Ligne 2, colonne « Email » : adresse e-mail invalide « mauvais »" in text(refused)
    assert "aucune ligne n'a été enregistrée" in text(refused)
    row[8] = "c.barbereau@example.org"
    done = await http.post("/import/clients", data={"csrf_token": csrf_from(page.text)},
                           files={"fichier": ("clients.xlsx", xlsx(CLIENT_KIND, row), XLSX)})
    assert done.status_code == 303 and done.headers["location"] == "/clients"
    assert "Fichier importé : 1 client, dont 1 création et 0 mise à jour." in text(await http.get("/clients"))

    await login(http, broker.viewer)
    page = await http.get("/import")
    assert "Votre rôle (lecture seule) ne permet pas d'importer." in text(page)
    forbidden = await http.post("/import/clients", data={"csrf_token": csrf_from(page.text)},
                                files={"fichier": ("clients.xlsx", xlsx(CLIENT_KIND, row), XLSX)})
    assert forbidden.status_code == 403
    assert (await http.get("/entites/nouvelle")).status_code == 403

    fleet = make_broker(kind="fleet")
    await login(http, fleet.manager)
    assert "réservées aux cabinets de courtage" in text(await http.get("/clients"))


async def test_admin_edits_entities_and_numbers_never_go_back(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    http, broker = notices_http, make_broker()
    await login(http, broker.admin)
    form = await http.get("/entites/nouvelle")
    values = {"csrf_token": csrf_from(form.text), "code": "forem", "name": "FOREM", "address1": "9, rue condorcet",
              "postal_code": "91260", "town": "Juvisy-sur-Orge", "vat_number": "NON SOUMIS A TVA",
              "next_notice_no": "196"}
    created = await http.post("/entites/nouvelle", data=values)
    assert created.status_code == 303
    duplicate = await http.post("/entites/nouvelle", data=values)
    assert duplicate.status_code == 422 and "une autre entité a déjà le code « FOREM »" in text(duplicate)
    with session_scope() as session:
        entity = session.scalars(select(LegalEntity).where(LegalEntity.organisation_id == broker.id,
                                                           LegalEntity.code == "FOREM")).one()
        assert (entity.vat_number, entity.letter_town, entity.next_notice_no) == (None, "JUVISY-SUR-ORGE", 196)
    edit = await http.get(f"/entites/{entity.id}")
    lowered = await http.post(f"/entites/{entity.id}", data=values | {"csrf_token": csrf_from(edit.text),
                                                                       "next_notice_no": "10"})
    assert lowered.status_code == 422 and "196 au moins" in text(lowered)
    raised = await http.post(f"/entites/{entity.id}", data=values | {
        "csrf_token": csrf_from(edit.text), "next_notice_no": "300", "phone": "01 99 00 00 01"})
    assert raised.status_code == 303
    listed = text(await http.get("/entites"))
    assert "<td>300</td>" in listed and "01 99 00 00 01" in listed
    assert (await http.get(f"/entites/{make_broker().entities['SIEGE']}")).status_code == 404


async def test_preview_and_stored_notice_in_the_client_history(notices_http: httpx.AsyncClient,  # noqa: F811
                                                               demo: int) -> None:
    http = notices_http
    await login(http, VIEWER)
    with session_scope() as session:
        receipt, contract, client = session.execute(
            select(Receipt, Contract, Client).join(Contract, Contract.id == Receipt.contract_id)
            .join(Client, Client.id == Contract.client_id)
            .where(Receipt.organisation_id == demo, Client.title == "Mme").limit(1)).one()
    preview = await http.get(f"/quittances/{receipt.id}/apercu.pdf", params={"frais_fixes": "1,50"})
    assert preview.status_code == 200 and preview.headers["content-type"] == "application/pdf"
    words = pdf_text(preview.content)
    assert "(aperçu, non numéroté)" in words and f"N° Client : {client.number}" in words
    assert f"Contrat : {contract.number}" in words and "Madame," in words and "Frais fixes 1,50 €" in words
    assert (await http.get(f"/quittances/{receipt.id}/apercu.pdf", params={"frais_fixes": "abc"})).status_code == 422
    with session_scope() as session:  # the preview took no number and kept nothing
        assert session.scalar(select(func.min(LegalEntity.next_notice_no)).where(
            LegalEntity.organisation_id == demo)) == 1
        stored = documents.store_notice_pdf(session, organisation_id=demo, legal_entity_id=contract.legal_entity_id,
                                            notice_number=900_000 + receipt.id, pdf=preview.content,
                                            client_id=client.id, receipt_id=receipt.id)
    record = text(await http.get(f"/clients/{client.id}"))
    assert re.search(rf"<td>{900_000 + receipt.id}</td><td>[^<]+</td>", record)
    document = await http.get(f"/documents/{stored.document.id}.pdf")
    assert document.content == preview.content and document.headers["x-content-sha256"] == stored.document.sha256
    other = make_broker()
    await login(http, other.viewer)
    assert (await http.get(f"/documents/{stored.document.id}.pdf")).status_code == 404
    assert (await http.get(f"/quittances/{receipt.id}/apercu.pdf")).status_code == 404
