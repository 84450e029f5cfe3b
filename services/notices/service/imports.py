"""Excel imports of clients, contracts and receipts: read defensively (`core.excel`), checked as the API's batches
are (`records`), all or nothing; every problem names its line, its column and why."""

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from core.excel import ExcelError, ExcelIssue, read_xlsx, write_xlsx
from services.notices.service.records import KINDS, Kind, SaveReport, check_batch, write_batch

MAX_LINES = 20_000
SHEET_TITLES = {"clients": "Clients", "contracts": "Contrats", "receipts": "Quittances"}


def headers(kind: Kind) -> list[str]:
    return [c.header for c in kind.columns]


def model_file(kind: Kind) -> bytes:
    """The expected workbook: the headers in order, no line."""
    return write_xlsx(headers(kind), [], sheet_title=SHEET_TITLES[kind.name])


def import_file(session: Session, *, organisation_id: int, kind: Kind | str, data: bytes, today: date,
                max_lines: int = MAX_LINES) -> SaveReport | list[ExcelIssue]:
    """Create or update the file's records; the list of problems (and no change at all) if any line is wrong."""
    kind = KINDS[kind] if isinstance(kind, str) else kind
    refused: list[ExcelIssue] = []
    try:
        rows = read_xlsx(data, expected_headers=headers(kind), max_rows=max_lines, optional_tail=kind.optional_tail)
    except ExcelError as exc:
        refused, rows = exc.issues, exc.rows  # rows come back when only some cells were refused (formulas)
        if not rows:
            return refused
    if not rows:
        return [ExcelIssue(None, None, "Le fichier ne contient aucune ligne de données sous les en-têtes.")]
    by_header = {c.header: c.field for c in kind.columns}
    items: list[dict[str, Any]] = [{by_header[h]: v for h, v in row.values.items() if h in by_header}
                                   for row in rows]
    records, problems = check_batch(session, organisation_id=organisation_id, kind=kind, items=items, today=today,
                                    position=lambda index: f"la ligne {rows[index].number}")
    refused_cells = {(issue.row, issue.column) for issue in refused}  # a refused formula is not also "obligatoire"
    found = [ExcelIssue(rows[p.index].number, kind.header(p.field), p.message) for p in problems]
    issues = refused + [i for i in found if (i.row, i.column) not in refused_cells]
    if issues:
        order = {h: i for i, h in enumerate(headers(kind))}
        return sorted(issues, key=lambda i: (i.row or 0, order.get(i.column or "", 99)))
    return write_batch(session, organisation_id=organisation_id, kind=kind, records=records)
