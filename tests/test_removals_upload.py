""""Créer une demande de dépose": a table of bad files (.xlsx and .xls), each refused with its row, column and
reason and nothing created; a 10,000-line file handled; a zip bomb and an .xls memory bomb refused quickly; a good
.xls file reaches the recap like an .xlsx."""

import io
import time
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache

import httpx
import pytest
import xlwt
from sqlalchemy import func, select

from core.db import session_scope
from core.models import User
from services.removals.models import Mandate, PendingUpload, RemovalRequest
from services.removals.service import upload
from tests.support.removals import XLSX, Deposer, Requester, create_request, line, make_deposer, make_requester, xlsx
from tests.support.web import csrf_from, login, text

YESTERDAY = date.today() - timedelta(days=1)
Build = Callable[[Requester, Requester, Deposer], bytes]


@lru_cache
def zip_bomb() -> bytes:
    """A well-formed zip whose sheet inflates to 256 MiB of zeros (about 1 MB compressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for _ in range(64):
                sheet.write(b"\0" * (4 << 20))
    return buffer.getvalue()


XLS = "application/vnd.ms-excel"
XLS_DATE = xlwt.easyxf(num_format_str="DD/MM/YYYY")


def xls(*rows: Sequence[object], headers: Sequence[object] | None = None, at: tuple[int, int] = (0, 0)) -> bytes:
    """An old-format (BIFF8) workbook, as Excel 97-2003 saves it; dates as date cells; `at` moves the table."""
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Déposes")
    for r, row in enumerate([list(headers if headers is not None else upload.HEADERS), *map(list, rows)]):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, date | datetime):
                sheet.write(r + at[0], c + at[1], value, XLS_DATE)
            else:
                sheet.write(r + at[0], c + at[1], value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@lru_cache
def xls_bomb() -> bytes:
    """Six kilobytes whose used range (A1:IV65536) asks the reader for about 700 MB."""
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Déposes")
    for c, header in enumerate(upload.HEADERS):
        sheet.write(0, c, header)
    sheet.write(65535, 255, "x")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _in_open_request(r: Requester, other: Requester, d: Deposer) -> bytes:
    create_request(r, [line(r, r.vins[3], d)])
    return xlsx(line(r, r.vins[0], d), line(r, r.vins[3], d))


H = upload.HEADERS
BAD_FILES: list[tuple[str, Build, list[str]]] = [
    ("wrong header order", lambda r, o, d: xlsx(line(r, r.vins[0], d), headers=[H[1], H[0], *H[2:]]),
     ["Ligne 1, colonne « Vin » : colonne mal placée : attendue en A, trouvée en B"]),
    ("extra column", lambda r, o, d: xlsx(headers=[*H, "Immatriculation"]),
     ["Ligne 1, colonne « Immatriculation » : colonne inconnue (colonne G)"]),
    ("missing column", lambda r, o, d: xlsx(headers=H[:5]),
     ["Ligne 1, colonne « Commentaires » : colonne manquante (attendue en colonne F)"]),
    ("empty file", lambda r, o, d: b"", ["Le fichier est vide."]),
    ("empty workbook", lambda r, o, d: xlsx(headers=[]), ["Le fichier est vide"]),
    ("headers only", lambda r, o, d: xlsx(), ["Le fichier ne contient aucune ligne de véhicule"]),
    ("formula cell", lambda r, o, d: xlsx(line(r, r.vins[0], d), [*line(r, r.vins[1], d)[:3], '="Pa"&"ris"',
                                                                   *line(r, r.vins[1], d)[4:]]),
     ["Ligne 3, colonne « Lieu de dépose » : formule refusée"]),
    ("damaged .xls", lambda r, o, d: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
     ["Ce fichier .xls n'est pas lisible (endommagé, protégé par un mot de passe ou d'un autre format)"]),
    ("not a workbook", lambda r, o, d: b"Vin;N Abonnement\n", ["n'est pas un classeur Excel (.xls ou .xlsx) lisible"]),
    (".xls: wrong header order", lambda r, o, d: xls(line(r, r.vins[0], d), headers=[H[1], H[0], *H[2:]]),
     ["Ligne 1, colonne « Vin » : colonne mal placée : attendue en A, trouvée en B"]),
    (".xls: headers only", lambda r, o, d: xls(), ["Le fichier ne contient aucune ligne de véhicule"]),
    (".xls: empty sheet", lambda r, o, d: xls(headers=[]), ["Le fichier est vide"]),
    (".xls: table not in A1", lambda r, o, d: xls(line(r, r.vins[0], d), at=(2, 1)),
     ["Ligne 1 : La première ligne doit contenir les en-têtes"]),
    (".xls: value outside the columns", lambda r, o, d: xls([*line(r, r.vins[0], d), "oups"]),
     ["Ligne 2, colonne « G » : valeur hors des colonnes attendues"]),
    (".xls: unknown VIN and past date", lambda r, o, d: xls(line(r, "VF1AAAAAAAAAAAAAA", d, when=YESTERDAY)),
     ["Ligne 2, colonne « Vin » : VIN VF1AAAAAAAAAAAAAA inconnu ou n'appartenant pas à votre compte",
      f"Ligne 2, colonne « Date de dépose souhaitée » : date passée ({YESTERDAY:%d/%m/%Y})"]),
    (".xls: too big", lambda r, o, d: xls(*[line(r, r.vins[0], d, comment=f"{i:05d}" + "x" * 30000)
                                            for i in range(400)]),
     ["Le fichier dépasse la taille maximale de 10 Mo."]),
    (".xls memory bomb", lambda r, o, d: xls_bomb(), ["son contenu décompressé est anormalement volumineux"]),
    ("unknown VIN", lambda r, o, d: xlsx(line(r, "VF1AAAAAAAAAAAAAA", d)),
     ["Ligne 2, colonne « Vin » : VIN VF1AAAAAAAAAAAAAA inconnu ou n'appartenant pas à votre compte"]),
    ("VIN of another account", lambda r, o, d: xlsx(line(r, r.vins[0], d), line(o, o.vins[0], d)),
     ["inconnu ou n'appartenant pas à votre compte"]),
    ("malformed VIN", lambda r, o, d: xlsx(line(r, "WBA-123", d)),
     ["Ligne 2, colonne « Vin » : VIN invalide « WBA-123 » : 17 lettres ou chiffres attendus"]),
    ("subscription not the VIN's", lambda r, o, d: xlsx([r.vins[0], "999999Z99", d.code, "Paris", "30/12/2099", None]),
     ["Ligne 2, colonne « N° Abonnement » : le N° d'abonnement 999999Z99 ne correspond pas au VIN"]),
    ("unknown distributor code", lambda r, o, d: xlsx(line(r, r.vins[0], "ZZ999")),
     ["Ligne 2, colonne « Code Distributeur » : code distributeur « ZZ999 » inconnu"]),
    ("unreadable date", lambda r, o, d: xlsx(line(r, r.vins[0], d, when="demain")),
     ["Ligne 2, colonne « Date de dépose souhaitée » : date illisible : date attendue au format jj/mm/aaaa"]),
    ("impossible date", lambda r, o, d: xlsx(line(r, r.vins[0], d, when="31/02/2099")),
     ["Ligne 2, colonne « Date de dépose souhaitée » : date illisible : date inexistante"]),
    ("past date", lambda r, o, d: xlsx(line(r, r.vins[0], d, when=YESTERDAY)),
     [f"Ligne 2, colonne « Date de dépose souhaitée » : date passée ({YESTERDAY:%d/%m/%Y})"]),
    ("VIN twice in the file", lambda r, o, d: xlsx(line(r, r.vins[0], d), line(r, r.vins[1], d),
                                                   line(r, r.vins[0], d)),
     ["Ligne 4, colonne « Vin » : VIN {vin0} présent plusieurs fois dans le fichier (déjà en ligne 2)"]),
    ("VIN already in an open request", _in_open_request,
     ["Ligne 3, colonne « Vin » : VIN {vin3} déjà dans une demande de dépose en cours (#1)"]),
    ("required cell empty", lambda r, o, d: xlsx([r.vins[0], r.subscriptions[r.vins[0]], None, None, None]),
     ["Ligne 2, colonne « Code Distributeur » : cellule obligatoire vide"]),
    ("zip bomb", lambda r, o, d: zip_bomb(), ["son contenu décompressé est anormalement volumineux"]),
]


async def _upload(http: httpx.AsyncClient, data: bytes, name: str = "demande.xlsx") -> httpx.Response:
    page = await http.get("/demandes/nouvelle")
    return await http.post("/demandes/nouvelle", data={"csrf_token": csrf_from(page.text), "description": "Test",
                                                       "tracking_email": "suivi@exemple.fr"},
                           files={"fichier": (name, data, XLS if name.endswith(".xls") else XLSX)})


def _created(organisation_id: int) -> tuple[int, int]:
    with session_scope() as session:
        pending = session.scalar(select(func.count()).where(PendingUpload.organisation_id == organisation_id))
        requests = session.scalar(select(func.count()).where(RemovalRequest.organisation_id == organisation_id))
        return pending or 0, requests or 0


@pytest.mark.parametrize(("case", "build", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
async def test_bad_files_are_refused_and_nothing_is_created(removals_http: httpx.AsyncClient, case: str,
                                                            build: Build, expected: list[str]) -> None:
    requester, other, deposer = make_requester(4), make_requester(1), make_deposer()
    data = build(requester, other, deposer)
    before = _created(requester.id)
    await login(removals_http, requester.email)
    started = time.perf_counter()
    response = await _upload(removals_http, data)
    elapsed = time.perf_counter() - started
    page = text(response)
    assert response.status_code == 422, page[-2000:]
    assert "Le fichier est refusé : aucune demande n'a été créée." in page
    for fragment in expected:
        fragment = fragment.format(vin0=requester.vins[0], vin3=requester.vins[3])
        assert fragment in page, (fragment, page[page.find("import-errors"):][:1500])
    assert _created(requester.id) == before  # no pending upload, no request
    if case in ("zip bomb", ".xls memory bomb"):
        assert elapsed < 2, elapsed


async def test_all_problems_are_listed_at_once(removals_http: httpx.AsyncClient) -> None:
    requester, deposer = make_requester(3), make_deposer()
    await login(removals_http, requester.email)
    page = text(await _upload(removals_http, xlsx(line(requester, requester.vins[0], "ZZ999"),
                                                  line(requester, requester.vins[1], deposer, when="hier"),
                                                  line(requester, requester.vins[2], deposer))))
    assert "Corrigez ces 2 problèmes" in page and "Ligne 2, colonne « Code Distributeur »" in page
    assert "Ligne 3, colonne « Date de dépose souhaitée »" in page


def test_a_10000_line_file_is_checked_in_a_few_queries() -> None:
    requester, deposers = make_requester(10_000), [make_deposer() for _ in range(5)]
    rows = [line(requester, vin, deposers[i % 5], lieu=f"Parc {i % 7}") for i, vin in enumerate(requester.vins)]
    data = xlsx(*rows)
    started = time.perf_counter()
    with session_scope() as session:
        lines = upload.check_upload(session, organisation_id=requester.id, data=data, today=date.today())
        user = session.scalars(select(User).where(User.email == requester.email)).one()
        upload_id = upload.save_pending(session, user=user, filename="gros.xlsx", tracking_email="a@b.fr",
                                        description=None, lines=lines)
        created, is_new = upload.confirm(session, user=user, upload_id=upload_id, today=date.today())
    elapsed = time.perf_counter() - started
    assert len(lines) == 10_000 and is_new and created.number == 1
    assert {line.deposer_id for line in lines} == {d.id for d in deposers}
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Mandate.request_id == created.id)) == 10_000
    assert elapsed < 30, elapsed


async def test_the_recap_lists_the_lines_and_belongs_to_its_requester(removals_http: httpx.AsyncClient) -> None:
    """The recap of a good file shows every line as "Nouvelle"; a viewer may look but not upload."""
    requester, deposer = make_requester(2), make_deposer()
    await login(removals_http, requester.email)
    response = await _upload(removals_http, xlsx(*[line(requester, vin, deposer) for vin in requester.vins]))
    assert response.status_code == 303
    recap = text(await removals_http.get(response.headers["location"]))
    assert recap.count("<td>Nouvelle</td>") == 2 and deposer.name in recap and deposer.email in recap
    assert _created(requester.id) == (1, 0)  # kept for "Confirmer", nothing created yet
    other = make_requester(1)
    await login(removals_http, other.email)
    assert (await removals_http.get(response.headers["location"])).status_code == 404  # another requester's upload


async def test_an_xls_file_reaches_the_recap_like_an_xlsx(removals_http: httpx.AsyncClient) -> None:
    """Excel 97-2003 files, as the seed allows (".XLS ou .XLSX"): date cells, number cells and a table read as
    from an .xlsx; the form says both formats are accepted."""
    requester, deposer = make_requester(2), make_deposer()
    await login(removals_http, requester.email)
    form = await removals_http.get("/demandes/nouvelle")
    assert 'accept=".xls,.xlsx,' in form.text and "Fichier .xls ou .xlsx" in text(form)
    assert "Format du fichier attendu : .XLS ou .XLSX" in text(form)
    when = date.today() + timedelta(days=20)
    rows = [line(requester, requester.vins[0], deposer, when=when, comment="A faire ASAP"),
            line(requester, requester.vins[1], deposer, when=when.strftime("%d/%m/%Y"))]
    response = await _upload(removals_http, xls(*rows), "Déposes juillet.xls")
    assert response.status_code == 303, text(response)[-1500:]
    recap = text(await removals_http.get(response.headers["location"]))
    assert recap.count("<td>Nouvelle</td>") == 2 and f"{when:%d/%m/%Y}" in recap
    assert requester.vins[0] in recap and "Déposes juillet.xls" in recap


async def test_every_problem_of_a_line_is_listed_at_once(removals_http: httpx.AsyncClient) -> None:
    """A malformed VIN or an unreadable date no longer hides the line's other checks."""
    requester, deposer = make_requester(2), make_deposer()
    await login(removals_http, requester.email)
    page = text(await _upload(removals_http, xlsx(
        ["WBA-123", "X", "ZZ999", None, YESTERDAY, None],  # VIN, code, date: three problems on one line
        [requester.vins[0], "999999Z99", deposer.code, "Paris", "demain", None],  # subscription and date
        [requester.vins[1], None, None, "Paris", "30/02/2099", None])))  # two empty cells and an impossible date
    expected = [
        "Ligne 2, colonne « Vin » : VIN invalide « WBA-123 »",
        "Ligne 2, colonne « Code Distributeur » : code distributeur « ZZ999 » inconnu",
        f"Ligne 2, colonne « Date de dépose souhaitée » : date passée ({YESTERDAY:%d/%m/%Y})",
        f"Ligne 3, colonne « N° Abonnement » : le N° d'abonnement 999999Z99 ne correspond pas au VIN "
        f"{requester.vins[0]}",
        "Ligne 3, colonne « Date de dépose souhaitée » : date illisible : date attendue au format jj/mm/aaaa",
        "Ligne 4, colonne « N° Abonnement » : cellule obligatoire vide",
        "Ligne 4, colonne « Code Distributeur » : cellule obligatoire vide",
        "Ligne 4, colonne « Date de dépose souhaitée » : date illisible : date inexistante",
    ]
    positions = [page.find(fragment) for fragment in expected]
    assert all(p >= 0 for p in positions), [f for f, p in zip(expected, positions, strict=True) if p < 0]
    assert positions == sorted(positions)  # by line, then in the file's column order
    assert f"Corrigez ces {len(expected)} problèmes" in page
    assert _created(requester.id) == (0, 0)
