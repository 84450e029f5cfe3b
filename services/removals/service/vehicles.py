"""«Gérer les véhicules clients»: the requester's equipped vehicles and their «Emplacement déclaré» (where the box
sits in the vehicle), edited one by one or imported from an Excel file (Vin | Emplacement déclaré).

The import is all or nothing, like a request's file: every problem names its row, column and reason.
"""

import re

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.db import scoped
from core.excel import ExcelError, ExcelIssue, parse_text, read_spreadsheet
from services.removals.models import TrackedVehicle

LOCATION_HEADERS = ["Vin", "Emplacement déclaré"]
MAX_LOCATION = 60
MAX_LINES = 20_000
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LocationRefused(Exception):
    def __init__(self, issues: list[ExcelIssue]) -> None:
        super().__init__("; ".join(map(str, issues)))
        self.issues = issues


def location_problem(value: str) -> str | None:
    """Why an «Emplacement déclaré» is refused (French), or None; empty is allowed (not declared)."""
    if len(value) > MAX_LOCATION:
        return f"{MAX_LOCATION} caractères au plus ({len(value)} saisis)"
    if CONTROL.search(value):
        return "caractères de contrôle refusés"
    return None


def set_location(session: Session, *, organisation_id: int, vehicle_id: int, location: str) -> TrackedVehicle:
    """Edit one vehicle's «Emplacement déclaré»; LookupError if not the requester's, ValueError with the reason."""
    vehicle = session.scalars(scoped(TrackedVehicle, organisation_id).where(TrackedVehicle.id == vehicle_id)).first()
    if vehicle is None:
        raise LookupError(vehicle_id)
    location = location.strip()
    if problem := location_problem(location):
        raise ValueError(f"Emplacement déclaré : {problem}.")
    vehicle.declared_location = location or None
    return vehicle


def import_locations(session: Session, *, organisation_id: int, data: bytes) -> int:
    """Set the «Emplacement déclaré» of the file's vehicles (an empty cell clears it); returns how many lines.
    Raises LocationRefused listing every problem, and then changes nothing."""
    issues: list[ExcelIssue] = []
    try:
        rows = read_spreadsheet(data, expected_headers=LOCATION_HEADERS, max_rows=MAX_LINES)
    except ExcelError as exc:
        issues.extend(exc.issues)
        rows = exc.rows
    wanted: dict[str, tuple[int, str | None]] = {}
    for row in rows:
        vin = (parse_text(row.values.get("Vin")) or "").upper().replace(" ", "")
        location = parse_text(row.values.get("Emplacement déclaré"))
        if not vin:
            issues.append(ExcelIssue(row.number, "Vin", "cellule obligatoire vide"))
        elif vin in wanted:
            issues.append(ExcelIssue(row.number, "Vin", f"VIN {vin} présent plusieurs fois dans le fichier "
                                                        f"(déjà en ligne {wanted[vin][0]})"))
        if location and (problem := location_problem(location)):
            issues.append(ExcelIssue(row.number, "Emplacement déclaré", problem))
        if vin and vin not in wanted:
            wanted[vin] = (row.number, location)
    known = {vin: vid for vid, vin in session.execute(
        scoped(TrackedVehicle, organisation_id).with_only_columns(TrackedVehicle.id, TrackedVehicle.vin)
        .where(TrackedVehicle.vin.in_(wanted)))} if wanted else {}
    for vin, (number, _location) in wanted.items():
        if vin not in known:
            issues.append(ExcelIssue(number, "Vin", f"VIN {vin} inconnu ou n'appartenant pas à votre compte"))
    if not rows and not issues:
        issues.append(ExcelIssue(None, None, "Le fichier ne contient aucune ligne de véhicule sous les en-têtes."))
    if issues:
        raise LocationRefused(sorted(issues, key=lambda i: (i.row or 0, LOCATION_HEADERS.index(i.column)
                                                            if i.column in LOCATION_HEADERS else 99)))
    session.execute(update(TrackedVehicle), [{"id": known[vin], "declared_location": location}
                                             for vin, (_n, location) in wanted.items()])
    return len(wanted)
