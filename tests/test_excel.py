"""core.excel: bad files are refused with a French reason naming row and column; good ones read; exports stay text."""

import io
import time
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook

from core.excel import ExcelError, ExcelIssue, parse_date, parse_int, parse_text, read_xlsx, write_xlsx

HEADERS = ["Matricule", "Nom", "Email"]


def xlsx(*rows: Sequence[object], title: str = "Feuil1") -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """A well-formed zip whose sheet inflates to 1 GiB of zeros (about 4.5 MB compressed, under the size cap)."""
    buffer = io.BytesIO()
    chunk = b"\0" * (4 << 20)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for _ in range(256):
                sheet.write(chunk)
    return buffer.getvalue()


def issues_of(data: bytes, **kwargs: object) -> list[str]:
    with pytest.raises(ExcelError) as caught:
        read_xlsx(data, expected_headers=HEADERS, **kwargs)  # type: ignore[arg-type]
    return [str(i) for i in caught.value.issues]


BAD_FILES: list[tuple[str, Callable[[], bytes], dict[str, object], list[str]]] = [
    ("wrong order", lambda: xlsx(["Nom", "Matricule", "Email"]), {},
     ["Ligne 1, colonne « Matricule » : colonne mal placée : attendue en A, trouvée en B"]),
    ("extra column", lambda: xlsx([*HEADERS, "Téléphone"]), {},
     ["Ligne 1, colonne « Téléphone » : colonne inconnue (colonne D)"]),
    ("missing column", lambda: xlsx(["Matricule", "Email"]), {},
     ["Ligne 1, colonne « Nom » : colonne manquante (attendue en colonne B)"]),
    ("duplicated column", lambda: xlsx(["Matricule", "Nom", "Email", "Nom"]), {},
     ["Ligne 1, colonne « Nom » : colonne en double (colonne D)"]),
    ("empty workbook", lambda: xlsx(), {}, ["Le fichier est vide"]),
    ("no header row", lambda: xlsx([None], ["A1", "Dupont", "a@b.fr"]), {}, ["Ligne 1 : La première ligne"]),
    ("formula cell", lambda: xlsx(HEADERS, ["A1", "Dupont", "a@b.fr"], ["A2", "=B2&\"x\"", "b@b.fr"]), {},
     ["Ligne 3, colonne « Nom » : formule refusée"]),
    ("value outside the columns", lambda: xlsx(HEADERS, ["A1", "Dupont", "a@b.fr", "oups"]), {},
     ["Ligne 2, colonne « D » : valeur hors des colonnes attendues"]),
    (".xls", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, {},
     ["Le format .xls n'est pas pris en charge : ouvrez le fichier dans Excel ou LibreOffice et enregistrez-le "
      "au format .xlsx"]),
    ("not a zip", lambda: b"Matricule;Nom;Email\nA1;Dupont;a@b.fr\n", {}, ["n'est pas un classeur Excel .xlsx"]),
    ("zip without a workbook", lambda: _zip({"hello.txt": "bonjour"}), {}, ["n'est pas un classeur Excel .xlsx"]),
    ("empty bytes", lambda: b"", {}, ["Le fichier est vide."]),
    ("too big", lambda: xlsx(HEADERS, ["A1", "x" * 5000, "a@b.fr"]), {"max_bytes": 1000},
     ["Le fichier dépasse la taille maximale"]),
    ("too many rows", lambda: xlsx(HEADERS, *[[f"M{i}", "Nom", None] for i in range(6)]), {"max_rows": 5},
     ["Ligne 7 : Le fichier contient plus de 5 lignes de données"]),
]


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(("case", "build", "kwargs", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_refused_with_a_french_reason(case: str, build: Callable[[], bytes], kwargs: dict[str, object],
                                                    expected: list[str]) -> None:
    issues = issues_of(build(), **kwargs)
    for fragment in expected:
        assert any(fragment in issue for issue in issues), (fragment, issues)


def test_a_header_problem_also_shows_the_expected_header_row() -> None:
    issues = issues_of(xlsx(["Matricule", "Name", "Email"]))
    assert issues[-1] == ("La première ligne doit contenir exactement ces en-têtes, dans cet ordre : "
                          "Matricule | Nom | Email")


def test_every_formula_is_reported_not_only_the_first() -> None:
    with pytest.raises(ExcelError) as caught:
        read_xlsx(xlsx(HEADERS, ["=1+1", "Dupont", "a@b.fr"], ["A2", "Durand", "=A2"]), expected_headers=HEADERS)
    # The other cells still come back, so an import can check them too and report everything at once.
    assert [(r.number, r.values) for r in caught.value.rows] == [(2, {"Nom": "Dupont", "Email": "a@b.fr"}),
                                                                 (3, {"Matricule": "A2", "Nom": "Durand"})]
    issues = [str(i) for i in caught.value.issues]
    assert issues == [
        "Ligne 2, colonne « Matricule » : formule refusée : collez la valeur calculée à la place "
        "(collage spécial « valeurs »)",
        "Ligne 3, colonne « Email » : formule refusée : collez la valeur calculée à la place "
        "(collage spécial « valeurs »)",
    ]


def test_a_zip_bomb_is_refused_before_parsing_and_quickly() -> None:
    bomb = zip_bomb()
    assert len(bomb) < 10 * 1024 * 1024  # the size cap alone would let it through
    started = time.perf_counter()
    issues = issues_of(bomb)
    assert time.perf_counter() - started < 0.2
    assert issues == ["Le fichier est refusé : son contenu décompressé est anormalement volumineux."]


def test_a_good_file_is_read_trimmed_with_spreadsheet_row_numbers() -> None:
    data = xlsx([" Matricule ", "Nom", "Email "], ["  A1 ", " Dupont", None], [None, None, None],
                [12345, "Durand", "d@x.fr"], title="Utilisateurs 2026")
    rows = read_xlsx(data, expected_headers=HEADERS)
    assert [(r.number, r.values) for r in rows] == [
        (2, {"Matricule": "A1", "Nom": "Dupont"}),
        (4, {"Matricule": 12345, "Nom": "Durand", "Email": "d@x.fr"}),  # the empty row 3 is skipped
    ]


def test_issue_rendering() -> None:
    assert str(ExcelIssue(4, "Email", "adresse invalide")) == "Ligne 4, colonne « Email » : adresse invalide"
    assert str(ExcelIssue(4, None, "ligne vide")) == "Ligne 4 : ligne vide"
    assert str(ExcelIssue(None, None, "Fichier vide.")) == "Fichier vide."


def test_write_xlsx_round_trip_keeps_formula_like_text_as_text() -> None:
    rows = [["=HYPERLINK(\"http://evil.example\",\"clic\")", "+33 6 12", date(2026, 3, 1)],
            ["@SUM(A1)", "-5", datetime(2026, 3, 1, 9, 30)], ["Dupont", 42, None]]
    data = write_xlsx(["Nom", "Téléphone", "Date"], rows, sheet_title="Export / mars")
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None and sheet.title == "Export   mars"
    assert sheet["A1"].value == "Nom" and sheet["A1"].font.b
    assert sheet["A2"].value == rows[0][0] and sheet["A2"].data_type == "s"
    assert sheet["B3"].value == "-5" and sheet["B3"].data_type == "s"
    assert sheet["C2"].value == datetime(2026, 3, 1) and sheet["C2"].number_format == "dd/mm/yyyy"
    # Read back through read_xlsx, which refuses formulas: the cells are plain text.
    back = read_xlsx(data, expected_headers=["Nom", "Téléphone", "Date"])
    assert back[0].values["Nom"] == rows[0][0] and back[1].values["Nom"] == "@SUM(A1)"
    assert back[2].values == {"Nom": "Dupont", "Téléphone": 42}


def test_cell_parsers() -> None:
    assert parse_date("05/03/2026") == parse_date("2026-03-05") == date(2026, 3, 5)
    assert parse_date(datetime(2026, 3, 5, 8)) == parse_date(date(2026, 3, 5)) == date(2026, 3, 5)
    bad: object
    for bad, reason in (("31/02/2026", "date inexistante"), ("mars 2026", "jj/mm/aaaa"), (45000, "jj/mm/aaaa")):
        with pytest.raises(ValueError, match=reason):
            parse_date(bad)
    assert parse_int(36) == parse_int(36.0) == parse_int(" 36 ") == 36
    assert parse_int("12 000") == 12000
    for bad in ("12,5", 3.5, "abc", True):
        with pytest.raises(ValueError, match="nombre entier attendu"):
            parse_int(bad)
    with pytest.raises(ValueError, match="supérieur ou égal à 0"):
        parse_int(-1)
    assert parse_text(31000.0) == "31000" and parse_text("  ") is None and parse_text(date(2026, 1, 2)) == "02/01/2026"
