"""Excel in and out, defensively: every service's imports read through `read_xlsx` (or `read_spreadsheet`, which
also takes old .xls files), exports use `write_xlsx`.

Reading refuses, before openpyxl parses anything, what could exhaust the server: oversized uploads, zip bombs
(declared sizes are trustworthy: `zipfile` stops at the declared size and fails the CRC check otherwise) and, in
`read_xlsx`, old .xls files. openpyxl parses the XML through defusedxml (installed), so entity bombs are refused
too. An .xls is parsed by calamine in a child process capped in memory and time (`core.excel_xls`), then goes
through the same header, cell and row checks. Every problem is an `ExcelIssue` naming row, column and reason in
French.
"""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from core import excel_xls
from core.ui import to_paris

MB = 1024 * 1024
MAX_UNCOMPRESSED = 200 * MB  # sum of the archive's members once inflated
MAX_RATIO = 200  # inflated / compressed, per member of more than RATIO_FLOOR bytes
RATIO_FLOOR = MB
MAX_MEMBERS = 2000
OLE_MAGIC = b"\xd0\xcf\x11\xe0"
FORMULA_PREFIXES = ("=", "+", "-", "@")
XLS_MESSAGE = ("Le format .xls n'est pas pris en charge : ouvrez le fichier dans Excel ou LibreOffice "
               "et enregistrez-le au format .xlsx")
UNREADABLE = "Ce fichier n'est pas un classeur Excel .xlsx lisible : enregistrez-le au format .xlsx et recommencez"
UNREADABLE_ANY = ("Ce fichier n'est pas un classeur Excel (.xls ou .xlsx) lisible : enregistrez-le au format .xlsx "
                  "et recommencez")
XLS_UNREADABLE = ("Ce fichier .xls n'est pas lisible (endommagé, protégé par un mot de passe ou d'un autre format) : "
                  "enregistrez-le de nouveau au format .xlsx et recommencez")
NO_SHEET = "Le classeur ne contient aucune feuille de données."
TOO_VOLUMINOUS = "Le fichier est refusé : son contenu décompressé est anormalement volumineux."
XLS_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class ExcelIssue:
    """One problem of an uploaded file; `row` is the spreadsheet's row number (headers = 1)."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"Ligne {self.row}" if self.row else "",
                                      f"colonne « {self.column} »" if self.column else "") if p)
        return f"{where} : {self.message}" if where else self.message


class ExcelError(Exception):
    """The file cannot be used; `issues` lists every reason found.

    When only some cells were refused (formulas, errors), `rows` holds the rows read without them, so that an
    import can still check the other cells and report every problem at once.
    """

    def __init__(self, issues: list[ExcelIssue], rows: list["ExcelRow"] | None = None) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues
        self.rows = rows or []


@dataclass
class ExcelRow:
    number: int
    values: dict[str, Any] = field(default_factory=dict)


def _fail(message: str, row: int | None = None, column: str | None = None) -> ExcelError:
    return ExcelError([ExcelIssue(row, column, message)])


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise _fail("Le fichier est vide.")
    if len(data) > max_bytes:
        raise _fail(f"Le fichier dépasse la taille maximale de {max_bytes / MB:g} Mo.")


def _check_archive(data: bytes, unreadable: str) -> None:
    """Refuse, cheaply and before any XML parsing, what is not a reasonable .xlsx."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _fail(unreadable) from exc
    too_big = sum(m.file_size for m in members) > MAX_UNCOMPRESSED
    inflated = any(m.file_size > RATIO_FLOOR and m.file_size > MAX_RATIO * max(m.compress_size, 1) for m in members)
    if len(members) > MAX_MEMBERS or too_big or inflated:
        raise _fail(TOO_VOLUMINOUS)


def _text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _check_headers(found: list[str], expected: list[str], optional_tail: int = 0) -> list[ExcelIssue]:
    """Which columns are missing, unknown, duplicated or misplaced (letters as Excel shows them). The last
    `optional_tail` expected columns may be left out (from the end)."""
    while found and not found[-1]:
        found.pop()
    if found == expected[:len(found)] and len(found) >= len(expected) - optional_tail:
        return []
    issues: list[ExcelIssue] = []
    for i, name in enumerate(found):
        letter = get_column_letter(i + 1)
        if not name:
            issues.append(ExcelIssue(1, letter, "colonne sans en-tête"))
        elif name not in expected:
            issues.append(ExcelIssue(1, name, f"colonne inconnue (colonne {letter})"))
        elif found.index(name) != i:
            issues.append(ExcelIssue(1, name, f"colonne en double (colonne {letter})"))
    for i, name in enumerate(expected):
        if name not in found:
            issues.append(ExcelIssue(1, name, f"colonne manquante (attendue en colonne {get_column_letter(i + 1)})"))
    if not issues:  # same columns, another order: name the first one out of place
        i = next(i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b)
        at, was = get_column_letter(i + 1), get_column_letter(found.index(expected[i]) + 1)
        issues.append(ExcelIssue(1, expected[i], f"colonne mal placée : attendue en {at}, trouvée en {was}"))
    issues.append(ExcelIssue(None, None, "La première ligne doit contenir exactement ces en-têtes, dans cet ordre : "
                                      + " | ".join(expected)))
    return issues


def read_xlsx(data: bytes, *, expected_headers: list[str], max_rows: int = 20000,
              max_bytes: int = 10 * MB, optional_tail: int = 0) -> list[ExcelRow]:
    """The data rows of the first sheet of an .xlsx, keyed by header; raises ExcelError listing every problem (an
    .xls is refused with how to convert it). The last `optional_tail` headers may be absent."""
    _check_size(data, max_bytes)
    if data.startswith(OLE_MAGIC):
        raise _fail(XLS_MESSAGE)
    return _read_xlsx(data, expected_headers, max_rows, UNREADABLE, optional_tail)


def read_spreadsheet(data: bytes, *, expected_headers: list[str], max_rows: int = 20000,
                     max_bytes: int = 10 * MB, optional_tail: int = 0) -> list[ExcelRow]:
    """`read_xlsx`, and old .xls files too, with the same checks and messages."""
    _check_size(data, max_bytes)
    if data.startswith(OLE_MAGIC):
        return _read_rows(_xls_rows(data, max_rows), expected_headers, max_rows, optional_tail)
    return _read_xlsx(data, expected_headers, max_rows, UNREADABLE_ANY, optional_tail)


def _read_xlsx(data: bytes, expected_headers: list[str], max_rows: int, unreadable: str,
               optional_tail: int = 0) -> list[ExcelRow]:
    _check_archive(data, unreadable)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged file; all mean "unreadable"
        raise _fail(unreadable) from exc
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None or not hasattr(sheet, "reset_dimensions"):
            raise _fail(NO_SHEET)
        sheet.reset_dimensions()  # the declared dimension may lie: read what is there
        return _read_rows(sheet.iter_rows(), expected_headers, max_rows, optional_tail)
    except ExcelError:
        raise
    except Exception as exc:
        raise _fail(unreadable) from exc
    finally:
        workbook.close()


@dataclass(frozen=True)
class _XlsCell:
    value: Any


def _xls_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["dt"]) if "dt" in value else date.fromisoformat(value["d"])
    return value


def _xls_rows(data: bytes, max_rows: int) -> list[list[_XlsCell]]:
    """The first worksheet of an .xls, parsed in a child process capped in memory and time (`core.excel_xls`),
    as rows of cells from A1 (calamine starts at the first filled cell: rows and columns are put back)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
           "RUST_BACKTRACE": "0"}
    try:
        child = subprocess.run([sys.executable, "-m", "core.excel_xls", str(max_rows)], input=data,
                               capture_output=True, timeout=XLS_TIMEOUT_SECONDS, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _fail(TOO_VOLUMINOUS) from exc
    if child.returncode == excel_xls.UNREADABLE:
        raise _fail(XLS_UNREADABLE)
    if child.returncode == excel_xls.NO_SHEET:
        raise _fail(NO_SHEET)
    if child.returncode != 0:  # killed by its memory or CPU limit, or its output cap
        raise _fail(TOO_VOLUMINOUS)
    parsed = json.loads(child.stdout)
    first_row, first_column = parsed["start"]
    rows: list[list[_XlsCell]] = [[] for _ in range(first_row)]
    padding = [_XlsCell(None)] * first_column
    rows.extend([*padding, *(_XlsCell(_xls_value(v)) for v in raw)] for raw in parsed["rows"])
    return rows


def _read_rows(rows: Iterable[Sequence[Any]], expected: list[str], max_rows: int,
               optional_tail: int = 0) -> list[ExcelRow]:
    issues: list[ExcelIssue] = []
    result: list[ExcelRow] = []
    header_seen = False
    for number, cells in enumerate(rows, start=1):
        if not header_seen:
            found = [str(_text(c.value) or "") for c in cells]
            if not any(found):
                raise _fail("La première ligne doit contenir les en-têtes : " + " | ".join(expected), row=1)
            if header_issues := _check_headers(found, expected, optional_tail):
                raise ExcelError(header_issues)
            expected = expected[:len(found)]  # optional last columns left out: cells there are out of columns
            header_seen = True
            continue
        values: dict[str, Any] = {}
        issues_before = len(issues)
        for index, cell in enumerate(cells):
            value = _text(cell.value)
            if value is None:
                continue
            column = expected[index] if index < len(expected) else get_column_letter(index + 1)
            if getattr(cell, "data_type", None) == "f":
                issues.append(ExcelIssue(number, column, "formule refusée : collez la valeur calculée à la place "
                                                         "(collage spécial « valeurs »)"))
            elif getattr(cell, "data_type", None) == "e":
                issues.append(ExcelIssue(number, column, f"cellule en erreur ({value})"))
            elif index >= len(expected):
                issues.append(ExcelIssue(number, column, "valeur hors des colonnes attendues"))
            else:
                values[column] = value
        if not values and len(issues) == issues_before:
            continue  # fully empty row
        if len(result) >= max_rows:
            raise _fail(f"Le fichier contient plus de {max_rows} lignes de données : découpez-le en plusieurs "
                        "fichiers.", row=number)
        result.append(ExcelRow(number, values))
    if not header_seen:
        raise _fail("Le fichier est vide : la première ligne doit contenir les en-têtes : " + " | ".join(expected))
    if issues:
        raise ExcelError(issues, result)
    return result


# --- cell parsing, for the imports (ValueError carries the French reason) ---

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_text(value: Any) -> str | None:
    """A cell as text: 12345 (a number cell) → "12345", "  x " → "x", empty → None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "VRAI" if value else "FAUX"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        return value.strftime("%d/%m/%Y")
    return str(value).strip() or None


def parse_date(value: Any) -> date:
    """A date cell, or "jj/mm/aaaa" text (ISO "aaaa-mm-jj" also accepted)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip() if isinstance(value, str) else ""
    match = _DATE.fullmatch(text)
    parts: tuple[str, ...] | None = (match.group(3), match.group(2), match.group(1)) if match else None
    if parts is None and (iso := _ISO_DATE.fullmatch(text)):
        parts = iso.groups()
    if parts is None:
        raise ValueError(f"date attendue au format jj/mm/aaaa, trouvé « {parse_text(value)} »")
    try:
        parsed = date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise ValueError(f"date inexistante « {text} »") from None
    if not 1900 <= parsed.year <= 2200:
        raise ValueError(f"année invraisemblable « {text} »")
    return parsed


def parse_int(value: Any, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """A whole number from a number cell or text ("12 000" accepted); bounds checked."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        compact = re.sub(r"[\s\u00a0\u202f]", "", value)
        if re.fullmatch(r"-?\d{1,12}", compact):
            number = int(compact)
    if number is None:
        raise ValueError(f"nombre entier attendu, trouvé « {parse_text(value)} »")
    if minimum is not None and number < minimum:
        raise ValueError(f"nombre supérieur ou égal à {minimum} attendu, trouvé {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"nombre inférieur ou égal à {maximum} attendu, trouvé {number}")
    return number


# --- writing ---

def excel_datetime(value: datetime) -> datetime:
    """What an export cell holds for an instant: Paris wall-clock time without zone (Excel has none).

    A naive value is taken as UTC (what the database stores); the server's and PostgreSQL's zones never matter.
    """
    return to_paris(value).replace(tzinfo=None)


def _out_cell(sheet: Any, value: Any) -> Any:
    if isinstance(value, datetime):
        value = excel_datetime(value)
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.startswith(FORMULA_PREFIXES):
            # Formula injection: store as a text cell (never evaluated), shown as typed.
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            cell.quotePrefix = True
            return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "dd/mm/yyyy hh:mm" if isinstance(value, datetime) else "dd/mm/yyyy"
        return cell
    return value


def write_xlsx(headers: list[str], rows: Iterable[Sequence[object]], *, sheet_title: str,
               extra_sheets: Sequence[tuple[str, list[str], Iterable[Sequence[object]]]] = ()) -> bytes:
    """A workbook streamed row by row (write-only mode); bold headers, text never a formula. The data is on the
    first sheet (the one imports read); `extra_sheets` (title, headers, rows) follow it, e.g. reference lists."""
    workbook = Workbook(write_only=True)
    for title, sheet_headers, sheet_rows in [(sheet_title, headers, rows), *extra_sheets]:
        _write_sheet(workbook, title, sheet_headers, sheet_rows)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_sheet(workbook: Workbook, title: str, headers: list[str], rows: Iterable[Sequence[object]]) -> None:
    sheet = workbook.create_sheet(title=re.sub(r"[\\/*?:\[\]]", " ", title)[:31] or "Feuille1")
    for i, header in enumerate(headers, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(12, len(header) + 4)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = _out_cell(sheet, header)
        cell = cell if isinstance(cell, Cell) else WriteOnlyCell(sheet, cell)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_out_cell(sheet, value) for value in row])
