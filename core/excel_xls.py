"""The child process that reads an old .xls (`python -m core.excel_xls MAX_ROWS`, the file on stdin).

calamine allocates the whole used range of a sheet at once: a 6 KB .xls with one cell in A1 and one in IV65536
asks for about 700 MB. So the parsing runs here, under an address-space and CPU limit set before calamine is even
imported; a hostile file kills this process, never the server. `core.excel.read_spreadsheet` starts it and turns
its exit code into a French message.

Output on stdout, JSON: {"start": [row, col], "rows": [[cell, ...], ...]}, each cell null, a bool, a number, a
string, or {"d": iso date} / {"dt": iso datetime}; rows stop after MAX_ROWS non-empty rows
past the header (the parent then says the file is too long).
"""

import io
import json
import resource
import sys
from datetime import date, datetime, time, timedelta
from typing import Any

MEMORY_LIMIT = 384 * 1024 * 1024  # address space of this process, Python and calamine included
CPU_SECONDS = 20
MAX_OUTPUT = 64 * 1024 * 1024  # what the parent will read at most
# Exit codes the parent understands (anything else, a kill by a limit included, means "too big").
UNREADABLE, NO_SHEET, TOO_MUCH = 3, 4, 5


def _cell(value: Any) -> Any:
    if value == "" or value is None:
        return None
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, time | timedelta):
        return str(value)
    return value


def main() -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    max_rows = int(sys.argv[1])
    data = sys.stdin.buffer.read()
    from python_calamine import CalamineWorkbook, SheetTypeEnum  # after the limits: its allocations are capped

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = [m.name for m in workbook.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
        if not sheets:
            return NO_SHEET
        sheet = workbook.get_sheet_by_name(sheets[0])
    except Exception as exc:  # calamine's errors (not an .xls, damaged, password): all mean "unreadable"
        print(str(exc)[:500], file=sys.stderr)
        return UNREADABLE
    rows: list[list[Any]] = []
    size, filled = 0, 0
    for raw in sheet.iter_rows():
        cells = [_cell(v) for v in raw]
        while cells and cells[-1] is None:
            cells.pop()
        rows.append(cells)
        size += len(json.dumps(cells, ensure_ascii=False))
        if size > MAX_OUTPUT:
            return TOO_MUCH
        filled += bool(cells)
        if filled > max_rows + 1:  # the header, max_rows rows, and one more: enough to say "too many"
            break
    start = list(sheet.start) if sheet.start else [0, 0]
    sys.stdout.write(json.dumps({"start": start, "rows": rows}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
