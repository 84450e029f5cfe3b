""""Créer une demande de dépose": the Excel file checked line by line, kept for the recap, then confirmed.

All or nothing: one bad line and nothing is kept; every problem names its row, column and reason. The checks run
again on "Confirmer" (a vehicle may have joined another request meanwhile), in the transaction that creates
request #N and its mandates.
"""

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import scoped
from core.excel import ExcelError, ExcelIssue, ExcelRow, parse_date, parse_text, read_spreadsheet
from core.models import Organisation, User
from services.removals.models import OPEN_STATUSES, Account, Mandate, PendingUpload, RemovalRequest, TrackedVehicle
from services.removals.service.process import mandate_workflow_id

HEADERS = ["Vin", "N° Abonnement", "Code Distributeur", "Lieu de dépose", "Date de dépose souhaitée", "Commentaires"]
REQUIRED = HEADERS[:3]  # the seed: «Lieu de dépose», «Date de dépose souhaitée» and «Commentaires» are free fields
PLACE_DATE = HEADERS[3:5]  # ... unless the requester's account requires them (`Account.place_date_required`)
MAX_LINES = 20_000
VIN = re.compile(r"[A-Z0-9]{17}")
EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z]{2,}")


@dataclass
class Line:
    """One checked line of the file: what the recap shows and "Confirmer" writes."""

    row: int
    vin: str
    subscription_no: str
    code: str
    lieu: str  # "" when not given
    desired_date: str  # ISO, so the line round-trips through JSON; "" when not given
    comment: str | None
    vehicle_id: int = 0
    marque: str = ""
    modele: str = ""
    deposer_id: int = 0
    deposer_name: str = ""
    deposer_email: str = ""


class UploadRefused(Exception):
    def __init__(self, issues: list[ExcelIssue]) -> None:
        super().__init__("; ".join(map(str, issues)))
        self.issues = issues


def read_lines(data: bytes, *, required: list[str] = REQUIRED) -> tuple[list[Line], list[ExcelIssue]]:
    """Parse the workbook (.xlsx or .xls) into lines; every problem of every line is collected, and a line with a
    bad cell is still returned (that cell left empty) so that its other cells are checked too."""
    issues: list[ExcelIssue] = []
    try:
        excel_rows = read_spreadsheet(data, expected_headers=HEADERS, max_rows=MAX_LINES)
    except ExcelError as exc:
        issues.extend(exc.issues)
        excel_rows = exc.rows
    refused_cells = {(i.row, i.column) for i in issues}  # a refused formula is not also "empty"
    return [_line(excel_row, issues, refused_cells, required) for excel_row in excel_rows], issues


def _line(excel_row: ExcelRow, issues: list[ExcelIssue], refused_cells: set[tuple[int | None, str | None]],
          required: list[str]) -> Line:
    """The line as far as its cells are readable; each unreadable or missing cell adds its issue and stays ""."""
    values: dict[str, Any] = excel_row.values

    def refuse(column: str, message: str) -> None:
        issues.append(ExcelIssue(excel_row.number, column, message))

    for header in required:
        if parse_text(values.get(header)) is None and (excel_row.number, header) not in refused_cells:
            refuse(header, "cellule obligatoire vide")
    vin = (parse_text(values.get("Vin")) or "").upper().replace(" ", "")
    if vin and not VIN.fullmatch(vin):
        refuse("Vin", f"VIN invalide « {vin} » : 17 lettres ou chiffres attendus")
        vin = ""
    desired = ""
    if parse_text(values.get("Date de dépose souhaitée")) is not None:
        try:
            desired = parse_date(values["Date de dépose souhaitée"]).isoformat()
        except ValueError as exc:
            refuse("Date de dépose souhaitée", f"date illisible : {exc}")
    return Line(row=excel_row.number, vin=vin, subscription_no=(parse_text(values.get("N° Abonnement")) or "").upper(),
                code=(parse_text(values.get("Code Distributeur")) or "").upper(),
                lieu=parse_text(values.get("Lieu de dépose")) or "",
                desired_date=desired, comment=parse_text(values.get("Commentaires")))


def check_lines(session: Session, *, organisation_id: int, lines: list[Line], today: date) -> list[ExcelIssue]:
    """Check the lines against the registry (in a few queries, whatever the file's size); fills their details.

    A cell left empty by `read_lines` (missing or unreadable, already reported) skips only the checks that need
    it: the line's other cells are still checked."""
    vins = {line.vin for line in lines if line.vin}
    vehicles = {v.vin: v for v in session.scalars(scoped(TrackedVehicle, organisation_id)
                                                  .where(TrackedVehicle.vin.in_(vins)))} if vins else {}
    codes = {line.code for line in lines if line.code}
    deposers = {a.code: (a, name) for a, name in session.execute(
        select(Account, Organisation.name).join(Organisation, Organisation.id == Account.organisation_id)
        .where(Account.code.in_(codes), Organisation.kind == "deposer"))} if codes else {}
    vehicle_ids = [v.id for v in vehicles.values()]
    open_requests = {vid: number for vid, number in session.execute(
        select(Mandate.vehicle_id, RemovalRequest.number)
        .join(RemovalRequest, RemovalRequest.id == Mandate.request_id)
        .where(Mandate.vehicle_id.in_(vehicle_ids), Mandate.status.in_(OPEN_STATUSES)))} if vehicle_ids else {}
    issues: list[ExcelIssue] = []
    first_row: dict[str, int] = {}
    for line in lines:
        def refuse(column: str, message: str, row: int = line.row) -> None:
            issues.append(ExcelIssue(row, column, message))

        vehicle = vehicles.get(line.vin)
        if line.vin:
            if line.vin in first_row:
                refuse("Vin", f"VIN {line.vin} présent plusieurs fois dans le fichier "
                              f"(déjà en ligne {first_row[line.vin]})")
            first_row.setdefault(line.vin, line.row)
            if vehicle is None:
                refuse("Vin", f"VIN {line.vin} inconnu ou n'appartenant pas à votre compte")
            elif vehicle.subscription_status != "active":
                refuse("Vin", f"l'abonnement du véhicule {line.vin} est déjà clôturé (dépose informatique faite)")
            elif vehicle.id in open_requests:
                refuse("Vin", f"VIN {line.vin} déjà dans une demande de dépose en cours "
                              f"(#{open_requests[vehicle.id]})")
            if vehicle is not None and line.subscription_no and vehicle.subscription_no.upper() != line.subscription_no:
                refuse("N° Abonnement",
                       f"le N° d'abonnement {line.subscription_no} ne correspond pas au VIN {line.vin}")
        if line.code and line.code not in deposers:
            refuse("Code Distributeur", f"code distributeur « {line.code} » inconnu")
        elif line.code and not deposers[line.code][0].email:
            refuse("Code Distributeur", f"le distributeur {line.code} n'a pas d'adresse e-mail de notification : "
                                        "contactez TRAQUEUR")
        if line.desired_date and date.fromisoformat(line.desired_date) < today:
            refuse("Date de dépose souhaitée",
                   f"date passée ({date.fromisoformat(line.desired_date):%d/%m/%Y}) : indiquez une date à venir")
        if vehicle is not None:
            line.vehicle_id, line.marque, line.modele = vehicle.id, vehicle.marque, vehicle.modele
        if line.code in deposers:
            deposer, name = deposers[line.code]
            line.deposer_id, line.deposer_name, line.deposer_email = deposer.organisation_id, name, deposer.email or ""
    return issues


def place_date_required(session: Session, *, organisation_id: int) -> bool:
    """Does the requester's account require «Lieu de dépose» and «Date de dépose souhaitée» (not the seed's way)?"""
    return bool(session.scalar(select(Account.place_date_required).where(Account.organisation_id == organisation_id)))


def set_place_date_required(session: Session, *, organisation_id: int, slug: str, required: bool) -> None:
    """The requester's setting (its account row is created if it had none, as `_next_number` does)."""
    session.execute(insert(Account).values(organisation_id=organisation_id, code=slug.upper()[:20], last_request_no=0,
                                           place_date_required=required)
                    .on_conflict_do_update(index_elements=["organisation_id"], set_={"place_date_required": required}))


def check_upload(session: Session, *, organisation_id: int, data: bytes, today: date) -> list[Line]:
    """The file's lines, all valid, or UploadRefused listing every problem (sorted by row)."""
    required = REQUIRED + (PLACE_DATE if place_date_required(session, organisation_id=organisation_id) else [])
    lines, issues = read_lines(data, required=required)
    issues += check_lines(session, organisation_id=organisation_id, lines=lines, today=today)
    if not lines and not issues:
        issues.append(ExcelIssue(None, None, "Le fichier ne contient aucune ligne de véhicule sous les en-têtes."))
    if issues:
        raise UploadRefused(sorted(issues, key=lambda i: (i.row or 0, HEADERS.index(i.column)
                                                         if i.column in HEADERS else 99)))
    return lines


def save_pending(session: Session, *, user: User, filename: str, tracking_email: str, description: str | None,
                 lines: list[Line]) -> str:
    upload_id = secrets.token_urlsafe(18)
    session.add(PendingUpload(id=upload_id, organisation_id=user.organisation_id, user_id=user.id,
                              filename=filename[:255], tracking_email=tracking_email, description=description,
                              lines=[asdict(line) for line in lines]))
    return upload_id


def get_pending(session: Session, *, organisation_id: int, upload_id: str, lock: bool = False) -> PendingUpload | None:
    stmt = scoped(PendingUpload, organisation_id).where(PendingUpload.id == upload_id)
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def pending_lines(pending: PendingUpload) -> list[Line]:
    return [Line(**line) for line in pending.lines]


def _next_number(session: Session, organisation: Organisation) -> int:
    """#N per requester, from a counter row locked by the UPDATE: two concurrent requests get two numbers."""
    session.execute(insert(Account).values(organisation_id=organisation.id, code=organisation.slug.upper()[:20],
                                           last_request_no=0).on_conflict_do_nothing())
    number = session.scalar(update(Account).where(Account.organisation_id == organisation.id)
                            .values(last_request_no=Account.last_request_no + 1).returning(Account.last_request_no))
    assert number is not None
    return int(number)


def confirm(session: Session, *, user: User, upload_id: str, today: date) -> tuple[RemovalRequest, bool]:
    """Create request #N and its mandates (status Nouvelle) at once; a second call returns the same request.

    Returns (request, created). Raises UploadRefused if a line is no longer valid, LookupError if unknown.
    """
    pending = get_pending(session, organisation_id=user.organisation_id, upload_id=upload_id, lock=True)
    if pending is None:
        raise LookupError(upload_id)
    if pending.request_id is not None:
        request = session.get(RemovalRequest, pending.request_id)
        assert request is not None
        return request, False
    lines = pending_lines(pending)
    issues = check_lines(session, organisation_id=user.organisation_id, lines=lines, today=today)
    if issues:
        raise UploadRefused(issues)
    organisation = session.get(Organisation, user.organisation_id)
    assert organisation is not None
    number = _next_number(session, organisation)
    request = RemovalRequest(organisation_id=user.organisation_id, number=number, created_by_id=user.id,
                             tracking_email=pending.tracking_email, description=pending.description)
    session.add(request)
    session.flush()
    rows = [{"organisation_id": user.organisation_id, "request_id": request.id, "vehicle_id": line.vehicle_id,
             "deposer_id": line.deposer_id, "line": line.row, "vin": line.vin, "lieu": line.lieu or None,
             "desired_date": date.fromisoformat(line.desired_date) if line.desired_date else None,
             "comment": line.comment, "status": "nouvelle",
             "workflow_id": mandate_workflow_id(number, line.vin)} for line in lines]
    try:
        with session.begin_nested():
            session.execute(insert(Mandate), rows)
    except IntegrityError as exc:  # a concurrent request took one of the vehicles after our check
        raise UploadRefused([ExcelIssue(None, None, "Un des véhicules vient d'être ajouté à une autre demande de "
                                                    "dépose : chargez de nouveau le fichier.")]) from exc
    pending.request_id = request.id
    return request, True


DEPOSER_HEADERS = ["Nom du déposeur", "Code Distributeur"]
MAIN_DEPOSERS = 10


def main_deposers(session: Session, *, organisation_id: int, limit: int = MAIN_DEPOSERS) -> list[tuple[str, str]]:
    """«Vos principaux déposeurs sont»: (name, code) of the deposers the requester used most, then the others by
    name, up to `limit`; only those a request can be sent to (a notification address)."""
    used = (select(Mandate.deposer_id, func.count().label("n")).where(Mandate.organisation_id == organisation_id)
            .group_by(Mandate.deposer_id).subquery())
    stmt = (select(Organisation.name, Account.code).join(Account, Account.organisation_id == Organisation.id)
            .outerjoin(used, used.c.deposer_id == Organisation.id)
            .where(Organisation.kind == "deposer", Account.email.is_not(None), Account.email != "")
            .order_by(func.coalesce(used.c.n, 0).desc(), Organisation.name, Account.code).limit(limit))
    return [(name, code) for name, code in session.execute(stmt)]


def example_lines(session: Session, *, organisation_id: int, today: date) -> list[list[object]]:
    """Two lines of the model file, from the requester's vehicles free for a request (none if it has none)."""
    busy = select(Mandate.vehicle_id).where(Mandate.status.in_(OPEN_STATUSES))
    vehicles = list(session.scalars(scoped(TrackedVehicle, organisation_id)
                                    .where(TrackedVehicle.subscription_status == "active",
                                           TrackedVehicle.id.not_in(busy)).order_by(TrackedVehicle.vin).limit(2)))
    codes = [code for _name, code in main_deposers(session, organisation_id=organisation_id, limit=2)]
    if not codes:
        return []
    return [[v.vin, v.subscription_no, codes[i % len(codes)], "Parc de stockage", today + timedelta(days=14),
             "A faire ASAP" if i == 0 else None] for i, v in enumerate(vehicles)]


def valid_email(value: str) -> bool:
    return bool(EMAIL.fullmatch(value.strip()))
