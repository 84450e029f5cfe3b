"""Excel imports of the notices' reference data: a clean file creates then updates; every kind of bad file is refused
whole, each problem naming its line and column, and nothing is written."""

from datetime import date

from sqlalchemy import func, select

from core.db import session_scope
from core.excel import ExcelIssue, write_xlsx
from services.notices.models import Client, Contract, Receipt
from services.notices.service import imports
from services.notices.service.imports import MAX_LINES, headers
from services.notices.service.records import CLIENTS, CONTRACTS, RECEIPTS, Kind, SaveReport
from tests.support.notices import Broker, client_item, contract_item, make_broker, save, xlsx

TODAY = date(2026, 12, 3)
CLIENT: list[object] = ["P5", "Dr", "Barbereau", "Catherine", "1 avenue des sables", None, "91350", "Crigny",
          "C.Barbereau@Example.org", "Oui", "winpass", None, "C", "Non"]


def _import(broker: Broker, kind: Kind, data: bytes) -> SaveReport | list[ExcelIssue]:
    with session_scope() as session:
        return imports.import_file(session, organisation_id=broker.id, kind=kind, data=data, today=TODAY)


def _count(broker: Broker, model: type[Client] | type[Contract] | type[Receipt]) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.organisation_id == broker.id)) or 0


def _messages(result: SaveReport | list[ExcelIssue]) -> list[str]:
    assert isinstance(result, list), f"the file was accepted: {result}"
    return [str(issue) for issue in result]


def test_clean_files_create_then_update_clients_contracts_and_receipts() -> None:
    broker = make_broker()
    assert _import(broker, CLIENTS, xlsx(CLIENTS, CLIENT, ["CA13", "mr", "GACHET", "Serge", "5 allée Visons", None,
                                                           91220, "Le Plessis Paté", None, None, None, None, None,
                                                           None])) == SaveReport(2, 0)
    contract = ["ES0690024410", "CA13", "siege", "CIGA - AXA", "Bris de machine", None, None, None]
    assert _import(broker, CONTRACTS, xlsx(CONTRACTS, contract)) == SaveReport(1, 0)
    receipt = ["Q1", "ES0690024410", "01/01/2027", date(2027, 12, 31), None, None, "01/2027", "Confié", "terme",
               "412,50", 37.13, 8, "457,63", None]
    assert _import(broker, RECEIPTS, xlsx(RECEIPTS, receipt)) == SaveReport(1, 0)
    with session_scope() as session:
        p5 = session.scalars(select(Client).where(Client.organisation_id == broker.id, Client.number == "P5")).one()
        assert (p5.title, p5.town, p5.email, p5.notice_by_email, p5.status) == (
            "Dr", "CRIGNY", "c.barbereau@example.org", True, "C")
        ca13 = session.scalars(select(Client).where(Client.organisation_id == broker.id, Client.number == "CA13")).one()
        assert (ca13.title, ca13.postal_code, ca13.notice_by_email) == ("M.", "91220", False)
        k = session.scalars(select(Contract).where(Contract.organisation_id == broker.id)).one()
        assert (k.tacit_renewal, k.notice_period_months, k.legal_entity_id) == (True, 2, broker.entities["SIEGE"])
        r = session.scalars(select(Receipt).where(Receipt.organisation_id == broker.id)).one()
        assert (r.effect_date, r.entry_date, r.debit_month, r.collection, r.receipt_type) == (
            date(2027, 1, 1), TODAY, date(2027, 1, 1), "confie", "terme")
        assert str(r.total_ttc) == "457.63"
    # The same dossier again updates it (empty cells clear values); a new one is created.
    changed = CLIENT[:8] + [None, "Non"] + CLIENT[10:]
    assert _import(broker, CLIENTS, xlsx(CLIENTS, changed, ["12", "SARL", "IGA", None, "Test", None, "91000",
                                                            "Evry", None, "n", None, None, "P", "x"])) \
        == SaveReport(1, 1)
    with session_scope() as session:
        p5 = session.scalars(select(Client).where(Client.organisation_id == broker.id, Client.number == "P5")).one()
        assert (p5.email, p5.notice_by_email) == (None, False)


def test_wrong_columns_are_named_and_nothing_is_written() -> None:
    broker = make_broker()
    wrong = ["Dossier", "Titre", "Nom", "Prénom", "Adresse", "Adresse 2", "Code postal", "Ville", "Email",
             "AE par mail", "Chargé clientèle", "Email chargé clientèle", "Statut", "Sans Pollicitation"]
    messages = _messages(_import(broker, CLIENTS, xlsx(CLIENTS, CLIENT, header_row=wrong)))
    assert "Ligne 1, colonne « Adresse » : colonne inconnue (colonne E)" in messages
    assert "Ligne 1, colonne « Adresse 1 » : colonne manquante (attendue en colonne E)" in messages
    swapped = headers(CLIENTS)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    assert "Ligne 1, colonne « Nom » : colonne mal placée : attendue en C, trouvée en D" in _messages(
        _import(broker, CLIENTS, xlsx(CLIENTS, CLIENT, header_row=swapped)))
    assert _messages(_import(broker, CLIENTS, xlsx(CLIENTS))) == [
        "Le fichier ne contient aucune ligne de données sous les en-têtes."]
    assert _count(broker, Client) == 0


def test_bad_cells_are_all_reported_with_line_and_column_and_nothing_is_written() -> None:
    broker = make_broker()
    good = ["OK1"] + CLIENT[1:]
    bad = ["P6", "Sa Majesté", None, None, "rue", None, "913", "Crigny", "pas-une-adresse", "peut-être", None,
           None, "X", None]
    formula = ["P7"] + CLIENT[1:8] + ["=A1"] + CLIENT[9:]
    messages = _messages(_import(broker, CLIENTS, xlsx(CLIENTS, good, bad, formula, ["OK1"] + CLIENT[1:])))
    assert messages == [
        "Ligne 3, colonne « Titre » : titre « Sa Majesté » inconnu : M., Mme, Mlle, M. et Mme, MM., Mmes, Dr, Me, "
        "Pr, ou une forme de société (SARL, SAS, SCI…)",
        "Ligne 3, colonne « Nom » : valeur obligatoire",
        "Ligne 3, colonne « Code postal » : code postal invalide « 913 » : 5 chiffres attendus",
        "Ligne 3, colonne « Email » : adresse e-mail invalide « pas-une-adresse »",
        "Ligne 3, colonne « AE par mail » : « peut-être » : Oui ou Non attendu",
        "Ligne 3, colonne « Statut » : statut « X » inconnu : C, D ou P attendu",
        "Ligne 4, colonne « Email » : formule refusée : collez la valeur calculée à la place (collage spécial "
        "« valeurs »)",
        "Ligne 5, colonne « Dossier » : « OK1 » en double : déjà dans la ligne 2",
    ]
    assert _count(broker, Client) == 0


def test_receipt_cells_unknown_references_and_edited_receipts() -> None:
    broker = make_broker()
    save(broker, CLIENTS, client_item("C1"))
    messages = _messages(_import(broker, CONTRACTS, xlsx(
        CONTRACTS, ["K1", "C1", "SIEGE", "CIGA", "Auto", None, "peut-être", 13],
        ["K2", "INCONNU", "AUTRE", "CIGA", "Auto", None, None, None])))
    assert messages == [
        "Ligne 2, colonne « Tacite reconduction » : « peut-être » : Oui ou Non attendu",
        "Ligne 2, colonne « Préavis de résiliation (mois) » : nombre inférieur ou égal à 12 attendu, trouvé 13",
        "Ligne 3, colonne « Dossier » : aucun client de dossier « INCONNU » : importez d'abord le client",
        "Ligne 3, colonne « Entité juridique » : aucune entité juridique de code « AUTRE »",
    ]
    assert _count(broker, Contract) == 0
    save(broker, CONTRACTS, contract_item("K1", "C1"))
    row = ["Q1", "K1", "01/01/2027", "31/12/2027", None, None, None, "Confié", "Terme", "100,00", "10", "0", None,
           None]
    refused = [
        ["Q2", "K9", "31/02/2027", "01/01/2026", None, None, "13/2027", "Délégué", "Acompte", "12,345", None, None,
         None, None],
        ["Q3", "K1", "01/02/2027", "01/01/2027", None, None, None, "direct", "comptant", "100", "10", "1", "120",
         None],
    ]
    messages = _messages(_import(broker, RECEIPTS, xlsx(RECEIPTS, row, *refused)))
    assert messages == [
        "Ligne 3, colonne « N° de contrat » : aucun contrat n° « K9 » : importez d'abord le contrat",
        "Ligne 3, colonne « Période du » : date inexistante « 31/02/2027 »",
        "Ligne 3, colonne « Mois de débit » : mois inexistant « 13/2027 »",
        "Ligne 3, colonne « Encaissement » : « Délégué » : Confié ou Direct attendu",
        "Ligne 3, colonne « Terme ou comptant » : « Acompte » : Terme ou Comptant attendu",
        "Ligne 3, colonne « Prime HT » : deux décimales au maximum, trouvé « 12,345 »",
        "Ligne 4, colonne « Période au » : la fin de période (01/01/2027) précède son début (01/02/2027)",
        "Ligne 4, colonne « Prime TTC » : Prime TTC 120,00 différente de Prime HT + Taxes + Frais = 111,00",
    ]
    assert _count(broker, Receipt) == 0
    # Once edited, a receipt's amounts no longer change (cancel it and create another); its edition date stays.
    assert _import(broker, RECEIPTS, xlsx(RECEIPTS, row[:13] + ["15/12/2026"])) == SaveReport(1, 0)
    assert _import(broker, RECEIPTS, xlsx(RECEIPTS, row)) == SaveReport(0, 1)
    changed = row[:9] + ["150,00"] + row[10:]
    assert _messages(_import(broker, RECEIPTS, xlsx(RECEIPTS, changed))) == [
        "Ligne 2, colonne « N° de quittance » : quittance déjà éditée le 15/12/2026 : sa période, ses montants, sa "
        "nature et son contrat ne changent plus ; annulez-la et créez-en une nouvelle"]
    assert len(_messages(_import(broker, RECEIPTS, xlsx(RECEIPTS, row + ["Acompte libre"])))) == 1  # nor its nature
    assert _import(broker, RECEIPTS, xlsx(RECEIPTS, row + ["Quittance", "12,00"])) == SaveReport(0, 1)  # a payment
    with session_scope() as session:
        receipt = session.scalars(select(Receipt).where(Receipt.organisation_id == broker.id)).one()
        assert (str(receipt.premium_ht), receipt.edition_date) == ("100.00", date(2026, 12, 15))


def test_unreadable_and_oversized_files_are_refused() -> None:
    broker = make_broker()
    assert "format .xls n'est pas pris en charge" in _messages(
        _import(broker, CLIENTS, b"\xd0\xcf\x11\xe0" + b"\0" * 100))[0]
    assert "n'est pas un classeur Excel .xlsx lisible" in _messages(_import(broker, CLIENTS, b"Dossier;Nom\n"))[0]
    rows = ([f"D{n}"] for n in range(MAX_LINES + 1))  # one cell a line is enough to count (and quick to write)
    assert _messages(_import(broker, CLIENTS, write_xlsx(headers(CLIENTS), rows, sheet_title="Clients"))) == [
        f"Ligne {MAX_LINES + 2} : Le fichier contient plus de {MAX_LINES} lignes de données : découpez-le en "
        "plusieurs fichiers."]
    assert _count(broker, Client) == 0
