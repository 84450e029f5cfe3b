"""The «Avis d'échéance» PDF: its text read back from the PDF (letterhead, recipient, "<ville> le <date>", number,
references, salutation from the «Titre», period, amounts with total and fixed fees, the L113-15-1 reminder), the
numbering per entity, and the PDF kept once, immutable, with its SHA-256."""

import hashlib
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from core.db import session_scope
from services.notices.models import Client, LegalEntity, NoticeDocument, Receipt
from services.notices.service import documents, entities, notice_pdf
from services.notices.service.fields import civility
from services.notices.service.records import CLIENTS, CONTRACTS, RECEIPTS
from tests.support.notices import client_item, contract_item, make_broker, pdf_text, receipt_item, save


def _receipt_id(broker_id: int, number: str) -> int:
    with session_scope() as session:
        return session.scalars(select(Receipt.id).where(Receipt.organisation_id == broker_id,
                                                        Receipt.number == number)).one()


def test_the_notice_pdf_says_what_the_seed_letter_says_and_is_kept_once() -> None:
    broker = make_broker()
    save(broker, CLIENTS, client_item("P5", title="Dr", first_name="Catherine", last_name="Barbereau",
                                      address1="1 avenue des sables", postal_code="91350", town="Crigny"))
    save(broker, CONTRACTS, contract_item("NUMERO", "P5", insurer="CIGA - AXA", category="Multirisques habitation"))
    save(broker, RECEIPTS, receipt_item("Q197", "NUMERO", premium_ht="1234.50", taxes="111.11", fees="10.00"))
    receipt_id = _receipt_id(broker.id, "Q197")
    entity_id = broker.entities["SIEGE"]
    with session_scope() as session:
        number = entities.take_notice_number(session, organisation_id=broker.id, entity_id=entity_id)
        content = notice_pdf.content_for_receipt(session, organisation_id=broker.id, receipt_id=receipt_id,
                                                 number=number, letter_date=date(2026, 10, 1),
                                                 fixed_fees=Decimal("2.50"))
    assert number == 197 and content is not None
    pdf = notice_pdf.render_notice(content)
    words = pdf_text(pdf)
    for expected in (
        "FOREM SIEGE 9, rue Condorcet Centre Hoche 91260 JUVISY-SUR-ORGE Tel : 01 99 00 24 24 Fax : 01 99 00 24 25",
        "N° de TVA intracommunautaire : NON SOUMIS A TVA",
        "Dr Catherine BARBEREAU 1 avenue des sables 91350 CRIGNY",
        "JUVISY-SUR-ORGE le 1er octobre 2026",
        "Avis d'échéance n°197",
        "Contrat : NUMERO Compagnie : CIGA - AXA Catégorie : Multirisques habitation Observations : / N° Client : P5",
        "Docteur, Nous avons l'honneur de vous informer que la prime de votre contrat d'assurances cité en référence "
        "arrive à échéance pour la période du 01/01/2027 au 31/12/2027.",
        "Prime HT 1 234,50 € Taxes 111,11 € Frais 10,00 € Prime TTC 1 355,61 € Frais fixes 2,50 € "
        "Total à payer 1 358,11 €",
        "votre règlement de 1 358,11 € au plus tard le 01/01/2027",
        "article L113-15-1 du Code des assurances, vous pouvez dénoncer sa reconduction jusqu'au 31 octobre 2026",
        "Nous vous prions d'agréer, Docteur, l'expression de nos salutations distinguées.",
    ):
        assert expected in words, f"« {expected} » absent de : {words}"

    with session_scope() as session:
        first = documents.store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=entity_id,
                                           notice_number=number, pdf=pdf, receipt_id=receipt_id,
                                           client_id=session.scalars(select(Client.id).where(
                                               Client.organisation_id == broker.id)).one())
        again = documents.store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=entity_id,
                                           notice_number=number, pdf=pdf.replace(b"%%EOF", b"%%EOF\n"))
        assert first.created and not again.created and again.document.id == first.document.id
        key = first.document.storage_key
    with session_scope() as session:
        kept = documents.fetch_by_key(session, organisation_id=broker.id, key=key)
        assert kept is not None and kept.content == pdf and kept.size == len(pdf)
        assert kept.sha256 == hashlib.sha256(pdf).hexdigest()
        assert documents.fetch_by_key(session, organisation_id=make_broker().id, key=key) is None
    with pytest.raises(DBAPIError, match="ne se modifie pas"), session_scope() as session:
        session.execute(update(NoticeDocument).where(NoticeDocument.storage_key == key).values(content=b"%PDF-faux"))
    with session_scope() as session:  # the numbering moved on: 197 is never given again
        assert entities.take_notice_number(session, organisation_id=broker.id, entity_id=entity_id) == 198
        assert session.scalar(select(LegalEntity.next_notice_no).where(LegalEntity.id == entity_id)) == 199
        with pytest.raises(LookupError):
            entities.take_notice_number(session, organisation_id=make_broker().id, entity_id=entity_id)


def test_a_stored_notice_whose_bytes_changed_is_refused_on_fetch() -> None:
    broker = make_broker()
    with session_scope() as session:
        stored = documents.store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=broker.entities[
            "SIEGE"], notice_number=1, pdf=b"%PDF-1.7 petit")
        session.execute(text("ALTER TABLE notices.documents DISABLE TRIGGER documents_immutable"))
        session.execute(update(NoticeDocument).where(NoticeDocument.id == stored.document.id)
                        .values(content=b"%PDF-1.7 autre"))
        session.execute(text("ALTER TABLE notices.documents ENABLE TRIGGER documents_immutable"))
        session.expire_all()
        with pytest.raises(documents.DocumentCorrupted):
            documents.fetch_document(session, organisation_id=broker.id, document_id=stored.document.id)
        session.rollback()
    with pytest.raises(ValueError), session_scope() as session:
        documents.store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=broker.entities["SIEGE"],
                                   notice_number=2, pdf=b"<html>")


@pytest.mark.parametrize(("title", "salutation", "legal_person"), [
    ("Dr", "Docteur", False), ("M.", "Monsieur", False), ("Mme", "Madame", False), ("Mlle", "Madame", False),
    ("M. et Mme", "Madame, Monsieur", False), ("SARL", "Madame, Monsieur", True), (None, "Madame, Monsieur", False),
    ("Me", "Maître", False), ("MM.", "Messieurs", False),
])
def test_salutation_comes_from_the_title(title: str | None, salutation: str, legal_person: bool) -> None:
    assert (civility(title).salutation, civility(title).legal_person) == (salutation, legal_person)


def test_termination_reminder_follows_article_l113_15_1() -> None:
    due = date(2027, 1, 1)
    assert notice_pdf.termination_deadline(due, 2) == date(2026, 10, 31)
    assert notice_pdf.termination_deadline(date(2027, 4, 30), 2) == date(2027, 2, 28)
    early = notice_pdf.termination_reminder(effect_date=due, notice_period_months=2, letter_date=date(2026, 10, 16))
    assert "jusqu'au 31 octobre 2026, date limite d'exercice de votre droit à dénonciation" in early
    for letter_date in (date(2026, 10, 17), date(2026, 11, 20)):  # less than 15 days before the deadline, or after
        late = notice_pdf.termination_reminder(effect_date=due, notice_period_months=2, letter_date=letter_date)
        assert "moins de quinze jours avant la date limite d'exercice de votre droit à dénonciation du contrat " \
               "(31 octobre 2026), ou après cette date" in late
        assert "d'un délai de vingt jours suivant la date d'envoi du présent avis" in late
    assert notice_pdf.long_date(date(2009, 4, 20)) == "20 avril 2009"
    assert notice_pdf.euros(Decimal("-1234.5")) == "-1\u202f234,50\u00a0€"


def test_companies_and_one_off_receipts_get_no_reminder_and_text_is_escaped() -> None:
    broker = make_broker()
    save(broker, CLIENTS, client_item("E1", title="SARL", first_name=None, last_name="Dupont & <Fils>"),
         client_item("P1"))
    save(broker, CONTRACTS, contract_item("K1", "E1", observations="Franchise <b>300 €</b>"), contract_item("K2", "P1"))
    save(broker, RECEIPTS, receipt_item("Q1", "K1", collection="direct"),
         receipt_item("Q2", "K2", receipt_type="comptant", premium_ht="-50.00", taxes="0", fees="0"))
    with session_scope() as session:
        company, cash = (notice_pdf.content_for_receipt(session, organisation_id=broker.id,
                                                        receipt_id=_receipt_id(broker.id, n), number=5,
                                                        letter_date=date(2026, 10, 1)) for n in ("Q1", "Q2"))
        assert notice_pdf.content_for_receipt(session, organisation_id=make_broker().id,
                                              receipt_id=_receipt_id(broker.id, "Q1"), number=1,
                                              letter_date=date(2026, 10, 1)) is None
    assert company is not None and cash is not None
    assert company.reminder is None and company.salutation == "Madame, Monsieur"
    html = notice_pdf.notice_html(company)
    assert "SARL DUPONT &amp; &lt;FILS&gt;" in html and "Franchise &lt;b&gt;300 €&lt;/b&gt;" in html
    assert "encaissée directement par la compagnie CIGA - AXA" in html
    assert cash.reminder is None and "en votre faveur" in notice_pdf.notice_html(cash)


def test_deposits_and_proposals_say_what_they_are_and_carry_no_renewal_reminder() -> None:
    broker = make_broker()
    save(broker, CLIENTS, client_item("P1"))
    save(broker, CONTRACTS, contract_item("K1", "P1"))
    save(broker, RECEIPTS, receipt_item("Q1", "K1"), receipt_item("A1", "K1", kind="appel_acomptes"),
         receipt_item("P1", "K1", is_proposal=True))
    with session_scope() as session:
        renewal, call, offer = (notice_pdf.content_for_receipt(session, organisation_id=broker.id,
                                                               receipt_id=_receipt_id(broker.id, n), number=5,
                                                               letter_date=date(2026, 10, 1))
                                for n in ("Q1", "A1", "P1"))
    assert renewal is not None and call is not None and offer is not None
    assert renewal.reminder is not None and "Nature :" not in notice_pdf.notice_html(renewal)
    assert call.reminder is None and offer.reminder is None
    call_html, offer_html = notice_pdf.notice_html(call), notice_pdf.notice_html(offer)
    assert "<dt>Nature :</dt> <dd>Appel d&#39;acomptes</dd>" in call_html
    assert "Nous vous adressons l&#39;appel d&#39;acomptes de votre contrat" in call_html
    assert "arrive à échéance" not in call_html
    assert "Quittance — proposition (pollicitation)" in offer_html and "notre proposition" in offer_html
