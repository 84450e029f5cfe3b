""""Créer une demande de dépose": a table of bad files, each refused with its row, column and reason and nothing
created; a 10,000-line file handled; a zip bomb refused quickly; .xls refused with how to convert."""

import io
import time
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache

import httpx
import pytest
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
    (".xls", lambda r, o, d: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
     ["Le format .xls n'est pas pris en charge : ouvrez le fichier dans Excel ou LibreOffice et enregistrez-le "
      "au format .xlsx"]),
    ("not a workbook", lambda r, o, d: b"Vin;N Abonnement\n", ["n'est pas un classeur Excel .xlsx lisible"]),
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
    ("required cell empty", lambda r, o, d: xlsx([r.vins[0], r.subscriptions[r.vins[0]], d.code, None, "30/12/2099"]),
     ["Ligne 2, colonne « Lieu de dépose » : cellule obligatoire vide"]),
    ("zip bomb", lambda r, o, d: zip_bomb(), ["son contenu décompressé est anormalement volumineux"]),
]


async def _upload(http: httpx.AsyncClient, data: bytes, name: str = "demande.xlsx") -> httpx.Response:
    page = await http.get("/demandes/nouvelle")
    return await http.post("/demandes/nouvelle", data={"csrf_token": csrf_from(page.text), "description": "Test",
                                                       "tracking_email": "suivi@exemple.fr"},
                           files={"fichier": (name, data, XLSX)})


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
    if case == "zip bomb":
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
