"""Excel in and out, defensively: every service's imports read through `read_xlsx`, exports use `write_xlsx`.

Reading refuses, before openpyxl parses anything, what could exhaust the server: oversized uploads, zip bombs
(declared sizes are trustworthy: `zipfile` stops at the declared size and fails the CRC check otherwise) and
old .xls files. openpyxl parses the XML through defusedxml (installed), so entity bombs are refused too.
Every problem is an `ExcelIssue` naming row, column and reason in French.
"""

import io
import re
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


def _check_archive(data: bytes, max_bytes: int) -> None:
    """Refuse, cheaply and before any XML parsing, what is not a reasonable .xlsx."""
    if not data:
        raise _fail("Le fichier est vide.")
    if len(data) > max_bytes:
        raise _fail(f"Le fichier dépasse la taille maximale de {max_bytes / MB:g} Mo.")
    if data.startswith(OLE_MAGIC):
        raise _fail(XLS_MESSAGE)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _fail(UNREADABLE) from exc
    too_big = sum(m.file_size for m in members) > MAX_UNCOMPRESSED
    inflated = any(m.file_size > RATIO_FLOOR and m.file_size > MAX_RATIO * max(m.compress_size, 1) for m in members)
    if len(members) > MAX_MEMBERS or too_big or inflated:
        raise _fail("Le fichier est refusé : son contenu décompressé est anormalement volumineux.")


def _text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _check_headers(found: list[str], expected: list[str]) -> list[ExcelIssue]:
    """Which columns are missing, unknown, duplicated or misplaced (letters as Excel shows them)."""
    while found and not found[-1]:
        found.pop()
    if found == expected:
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
              max_bytes: int = 10 * MB) -> list[ExcelRow]:
    """The data rows of the first sheet, keyed by header; raises ExcelError listing every problem."""
    _check_archive(data, max_bytes)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged file; all mean "unreadable"
        raise _fail(UNREADABLE) from exc
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None or not hasattr(sheet, "reset_dimensions"):
            raise _fail("Le classeur ne contient aucune feuille de données.")
        sheet.reset_dimensions()  # the declared dimension may lie: read what is there
        return _read_rows(sheet.iter_rows(), expected_headers, max_rows)
    except ExcelError:
        raise
    except Exception as exc:
        raise _fail(UNREADABLE) from exc
    finally:
        workbook.close()


def _read_rows(rows: Iterable[Sequence[Any]], expected: list[str], max_rows: int) -> list[ExcelRow]:
    issues: list[ExcelIssue] = []
    result: list[ExcelRow] = []
    header_seen = False
    for number, cells in enumerate(rows, start=1):
        if not header_seen:
            found = [str(_text(c.value) or "") for c in cells]
            if not any(found):
                raise _fail("La première ligne doit contenir les en-têtes : " + " | ".join(expected), row=1)
            if header_issues := _check_headers(found, expected):
                raise ExcelError(header_issues)
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


def write_xlsx(headers: list[str], rows: Iterable[Sequence[object]], *, sheet_title: str) -> bytes:
    """A one-sheet workbook, streamed row by row (write-only mode); bold headers, text never a formula."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=re.sub(r"[\\/*?:\[\]]", " ", sheet_title)[:31] or "Feuille1")
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
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
