"""The chaos bench's fourth flow, the notices mail robot: a broker's data, seeded, and what its people do over HTTP.

Seeded (bulk, through the service's own `records.save_batch` as bench.notices does): a broker organisation with an
administrator and a manager, one legal entity with «Confirmation manuelle» on, and N clients each with one receipt
due next month, all with an address at NOTICES_DOMAIN. Done over the notices service's pages, as people do (login,
CSRF token from the page, the form's own fields posted back): the administrator sets the «Automate d'envoi»
(pause 0 between mails, so the robot claims ahead; a short wait after an error and enough tries to outlast the SMTP
cut), the manager clicks «Mail» on /editions, answers «Oui» once the run's page asks «Marquer les avis comme édités
?», then on /avis shows the run's E notices, «Sélection» (every box) and «Valider». The robot then sends each
notice with its PDF through the SMTP proxy to the sink.
"""

import asyncio
import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx

from bench.chaos_flows import PASSWORD, login
from bench.notices import seed_due_receipts

NOTICES_DOMAIN = "chaos-avis.example"
ROBOT = {"pause_ms": "0", "error_wait_ms": "2000", "max_attempts": "10"}  # AE_WAIT_IF_ERROR 2 s x 10 tries > 10 s cut
ROW = re.compile(r'<tr[^>]*data-notice="[^"]*">(.*?)</tr>', re.S)
ROW_ID = re.compile(r'name="ids" value="(\d+)"')


@dataclass
class Broker:
    """A seeded broker: its administrator's and manager's logins."""

    organisation_id: int
    slug: str
    admin: str
    manager: str


def seed_broker(count: int, domain: str = NOTICES_DOMAIN) -> Broker:
    """A broker with `count` clients (addresses at `domain`), each with one contract and one receipt due next
    month, and an entity whose notices wait for a manager's «Valider» (manual confirmation on)."""
    from core.db import session_scope
    from core.models import Organisation, User
    from core.security import hash_password
    from services.notices.models import LegalEntity

    slug = "chaos-courtier"
    with session_scope() as session:
        org = Organisation(slug=slug, name="Chaos Courtage", kind="broker")
        session.add(org)
        session.flush()
        password = hash_password(PASSWORD)
        admin, manager = f"admin@{slug}.example", f"gestion@{slug}.example"
        session.add_all([
            User(organisation_id=org.id, email=admin, full_name="Admin Chaos", role="admin", password_hash=password),
            User(organisation_id=org.id, email=manager, full_name="Gestion Chaos", role="manager",
                 password_hash=password),
            LegalEntity(organisation_id=org.id, code="CHAOS", name="Cabinet Chaos", address1="1 rue du Chaos",
                        postal_code="31000", town="TOULOUSE", letter_town="TOULOUSE", next_notice_no=1,
                        email=f"contact@{slug}.example", manual_confirmation=True)])
        session.flush()
        broker = Broker(org.id, slug, admin, manager)
    seed_due_receipts(broker.organisation_id, count, entity_code="CHAOS", email=lambda n: f"avis{n}@{domain}",
                      prefix="K")
    return broker


class _Form(HTMLParser):
    """The fields a browser would post for the form whose action is `action` (buttons left out)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside = action, False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        elif not self.inside or "name" not in a and tag != "option":
            return
        elif tag == "input" and a.get("type", "text") not in ("submit", "button", "image", "reset", "file"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields.append((a["name"], a.get("value", "on" if a.get("type") == "checkbox" else "")))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, value = self.fields.pop()
            self.fields.append((name, value + data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select is not None:
            first = self._options[0][0] if self._options else ""
            chosen = next((v for v, selected in self._options if selected), first)
            self.fields.append((self._select, chosen))
            self._select = None


def form_fields(page: httpx.Response, action: str) -> list[tuple[str, str]]:
    parser = _Form(action)
    parser.feed(page.text)
    assert parser.fields, f"no form {action} in {page.url}"
    return parser.fields


def _flashes(page: httpx.Response) -> list[tuple[str, str]]:
    """(category, message) of the messages the page shows after a POST."""
    return [(kind, html.unescape(text))
            for kind, text in re.findall(r'class="flash flash-(\w+)" role="status">([^<]*)<', page.text)]


async def set_robot(http: httpx.AsyncClient) -> None:
    """The administrator's «Automate d'envoi» settings: ROBOT over the form's current values, «Enregistrer»."""
    page = await http.get("/automate")
    fields = [(k, ROBOT.get(k, v)) for k, v in form_fields(page, "/automate/parametres")]
    saved = await http.post("/automate/parametres", data=dict(fields))
    assert saved.status_code == 303, f"robot settings: {saved.status_code} {saved.text[-800:]}"
    shown = await http.get(saved.headers["location"])
    assert ("success", "Paramètres de l'automate enregistrés.") in _flashes(shown), _flashes(shown)


async def start_run(http: httpx.AsyncClient) -> int:
    """«Mail» on /editions with the form as it opens (the broker's one entity chosen): the run's id."""
    page = await http.get("/editions")
    started = await http.post("/editions", data=_multi(form_fields(page, "/editions")))
    assert started.status_code == 303, f"«Mail»: {started.status_code} {started.text[-800:]}"
    return int(started.headers["location"].rstrip("/").rsplit("/", 1)[1])


def _multi(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in fields:
        out.setdefault(name, []).append(value)
    return out


async def _wait_page(http: httpx.AsyncClient, url: str, ready: str, *, seconds: float, failed: str = "") -> str:
    """Reload `url` every second (as the run's page refreshes itself) until it shows `ready`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            page = await http.get(url)
            if ready in page.text:
                return page.text
            assert not failed or failed not in page.text, f"{url}: {failed}"
        except httpx.HTTPError:
            pass  # the service is up for the whole run; a slow answer is retried like a person's reload
        assert time.monotonic() < deadline, f"{url} never showed {ready!r}"
        await asyncio.sleep(1)


async def answer_yes(http: httpx.AsyncClient, run_id: int, *, seconds: float) -> None:
    """Once the PDFs are made, «Marquer les avis comme édités ?» → «Oui»."""
    url = f"/editions/{run_id}"
    await _wait_page(http, url, "Marquer les avis comme édités ?", seconds=seconds,
                     failed='id="run-status">En erreur')
    page = await http.get(url)
    fields = dict(form_fields(page, f"{url}/reponse")) | {"answer": "oui"}
    answered = await http.post(f"{url}/reponse", data=fields)
    assert answered.status_code == 303, f"«Oui»: {answered.status_code}"
    shown = await http.get(answered.headers["location"])
    assert any("Avis marqués comme édités" in text for _, text in _flashes(shown)), _flashes(shown)


async def validate_all(http: httpx.AsyncClient, run_id: int, expected: int, *, seconds: float) -> int:
    """On /avis, the run's notices waiting (E): «Sélection» then «Valider», again while some are left (the list
    shows 500 at most). Returns how many were validated."""
    await _wait_page(http, f"/editions/{run_id}", f"/avis?edition={run_id}", seconds=seconds)
    query = urlencode([("statut", "E"), ("edition", str(run_id)), ("rechercher", "1")])
    validated, deadline = 0, time.monotonic() + seconds
    while validated < expected:
        assert time.monotonic() < deadline, f"{validated}/{expected} notices validated"
        page = await http.get(f"/avis?{query}")
        ids = [found.group(1) for row in ROW.findall(page.text) if "en cours" not in row
               and (found := ROW_ID.search(row))]
        if not ids:  # the E ones left are being validated: their workflows apply it
            await asyncio.sleep(1)
            continue
        fields = dict(form_fields(page, "/avis/actions")) | {"action": "validate"}
        done = await http.post("/avis/actions", data={**fields, "ids": ids})
        assert done.status_code == 303, f"«Valider»: {done.status_code}"
        shown = await http.get(done.headers["location"])
        flashes = _flashes(shown)
        assert any(f"{len(ids)} avis validé(s)" in text for _, text in flashes), flashes
        assert not [text for kind, text in flashes if kind == "error"], flashes
        validated += len(ids)
    return validated


async def drive_notices(base_url: str, broker: Broker, count: int, *, seconds: float,
                        say: Callable[[str], None]) -> tuple[int, float]:
    """The administrator's settings, then the manager's «Mail», «Oui», «Sélection» + «Valider»: the run's id and
    when «Valider» was answered (epoch seconds)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await login(http, broker.admin)
        await set_robot(http)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await login(http, broker.manager)
        run_id = await start_run(http)
        say(f"notices run {run_id} launched («Mail», {count} notices to render)")
        await answer_yes(http, run_id, seconds=seconds)
        say(f"notices run {run_id}: PDFs made, «Oui» answered")
        validated = await validate_all(http, run_id, count, seconds=seconds)
        say(f"notices run {run_id}: {validated} notices validated («Sélection», «Valider»)")
    return run_id, time.time()
