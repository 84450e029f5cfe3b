"""The chaos bench's data and users: what is seeded in the database, and what people do over HTTP.

Seeded (bulk, as the other benchmarks do): two fleet organisations with their manager, drivers, a distribution
list and templates (one of them with a Workflow definition Mail → Attente), and a removals requester with its
vehicles and deposers (`bench.removals_common.seed`). Done over HTTP, as people do: managers log in, create their
campaign from the form and click "Lancer la campagne" (CSRF token taken from the page); the requester uploads the
file and confirms it; deposers open the "Accepter" links of the mails the SMTP sink received (GET, then POST).
"""

import asyncio
import re
import time
from dataclasses import dataclass, field

import httpx

from bench.removals_common import seed as seed_removals
from bench.removals_common import upload_file

PASSWORD = "relais-demo"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ACCEPT = re.compile(r"Accepter : (http://\S+)")
# Recipients' domains: each flow's mails are told apart in the sink by them.
EMAIL_DOMAIN, WORKFLOW_DOMAIN = "chaos-mail.example", "chaos-wf.example"
REMOVAL_DOMAINS = ("bench.example", "loueur.example")  # bench.removals_common's deposers and tracking address
WAIT_DAYS = 5


@dataclass
class Fleet:
    """A seeded fleet organisation: its manager's login, list and template (and Workflow definition)."""

    organisation_id: int
    manager: str
    list_id: int
    template_id: int
    definition_id: int | None = None
    wait_label: str = ""


@dataclass
class Clicks:
    """What the deposers did: links clicked and the answers they got."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<url>: <status or error>"
    seconds: list[float] = field(default_factory=list)  # GET + POST, per click

    @property
    def count(self) -> int:
        return len(self.done) + len(self.failed)


def seed_fleet(slug: str, recipients: int, domain: str, *, workflow: bool) -> Fleet:
    """An organisation with `recipients` drivers (all with an address at `domain`), a list, a template and, with
    `workflow`, a Workflow definition "Mail then Attente WAIT_DAYS days"."""
    from sqlalchemy.dialects.postgresql import insert

    from core.db import session_scope
    from core.models import Organisation, User
    from core.security import hash_password
    from services.campaigns.models import DistributionList, Driver, MailTemplate, WorkflowDefinition

    with session_scope() as session:
        org = Organisation(slug=slug, name=f"Chaos {slug}", kind="fleet")
        session.add(org)
        session.flush()
        manager = f"gestionnaire@{slug}.example"
        session.add(User(organisation_id=org.id, email=manager, full_name="Gestionnaire Chaos", role="manager",
                         password_hash=hash_password(PASSWORD)))
        rows = [{"organisation_id": org.id, "matricule": f"C{n:06d}", "nom": f"Nom{n}", "prenom": f"Prénom{n}",
                 "email": f"d{n}@{domain}", "code_postal": "31000", "departement": "31"} for n in range(recipients)]
        for start in range(0, recipients, 2000):
            session.execute(insert(Driver).values(rows[start:start + 2000]))
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        template = MailTemplate(organisation_id=org.id, name="Relevé", subject="Relevé kilométrique de {{prenom}}",
                                body="Bonjour {{prenom}} {{nom}},\n\nMerci de saisir votre kilométrage.\n\n"
                                     "{{lien_connexion}}\n\nVotre gestionnaire de parc vous remercie.")
        session.add_all([dlist, template])
        session.flush()
        fleet = Fleet(org.id, manager, dlist.id, template.id)
        if workflow:
            fleet.wait_label = f"Attente {WAIT_DAYS}j"
            definition = WorkflowDefinition(
                organisation_id=org.id, name="WF-Relevé chaos", family="compteurs", enabled=True,
                steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "",
                        "template_id": template.id},
                       {"type": "attente", "name": fleet.wait_label, "days": WAIT_DAYS}])
            session.add(definition)
            session.flush()
            fleet.definition_id = definition.id
        return fleet


def seed_requester(vehicles: int, deposers: int) -> tuple[str, bytes]:
    """The removals requester (login) and its request file of `vehicles` lines across `deposers` deposers."""
    return seed_removals(vehicles, deposers)


def _csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF token in {page.url}"
    return found.group(1)


async def login(http: httpx.AsyncClient, email: str) -> None:
    page = await http.get("/login")
    answer = await http.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page),
                                             "next": "/"})
    assert answer.status_code == 303, f"login of {email}: {answer.status_code}"


async def create_and_launch(http: httpx.AsyncClient, fleet: Fleet, name: str) -> int:
    """The manager creates the campaign from the form, opens it and clicks "Lancer la campagne"; returns its id."""
    form = await http.get("/campagnes/nouvelle")
    fields = {"csrf_token": _csrf(form), "name": name, "list_id": str(fleet.list_id),
              "kind": "workflow" if fleet.definition_id else "email"}
    if fleet.definition_id:
        fields["workflow_definition_id"] = str(fleet.definition_id)
    else:
        fields["template_id"] = str(fleet.template_id)
    created = await http.post("/campagnes/nouvelle", data=fields)
    assert created.status_code == 303, f"campaign form: {created.status_code} {created.text[-500:]}"
    campaign_id = int(created.headers["location"].rstrip("/").rsplit("/", 1)[1])
    page = await http.get(f"/campagnes/{campaign_id}")
    launched = await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": _csrf(page)})
    assert launched.status_code == 303, f"launch: {launched.status_code}"
    shown = await http.get(launched.headers["location"])
    assert "réussi" in shown.text, f"launch of campaign {campaign_id} refused: {shown.text[-800:]}"
    return campaign_id


async def confirm_request(http: httpx.AsyncClient, data: bytes) -> None:
    """Upload the file ("Créer une demande de dépose"), then "Confirmer" on its recap."""
    upload_id, _seconds = await upload_file(http, data)
    recap = await http.get(f"/demandes/recapitulatif/{upload_id}")
    confirmed = await http.post(f"/demandes/recapitulatif/{upload_id}/confirmer", data={"csrf_token": _csrf(recap)})
    assert confirmed.status_code == 303, f"confirm: {confirmed.status_code} {confirmed.text[-500:]}"


def accept_links(texts: list[str]) -> list[str]:
    return [url for text in texts for url in ACCEPT.findall(text)]


async def click_all(base_url: str, links: list[str], clicks: Clicks, *, rate: float, people: int) -> None:
    """Deposers open each link (the confirmation page), then press "Accepter": `rate` clicks a second overall,
    `people` at a time. A click whose GET or POST fails is recorded as failed, never retried: a person would
    not know."""
    gate = asyncio.Semaphore(people)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def click(n: int, url: str, http: httpx.AsyncClient) -> None:
        await asyncio.sleep(max(0.0, started + n / rate - loop.time()))
        async with gate:
            begun = time.perf_counter()
            try:
                page = await http.get(url)
                if page.status_code != 200 or "<form" not in page.text:
                    clicks.failed.append(f"{url}: GET {page.status_code}")
                    return
                answer = await http.post(url, data={})
                if answer.status_code != 200 or "Merci" not in answer.text:
                    clicks.failed.append(f"{url}: POST {answer.status_code}")
                    return
            except httpx.HTTPError as exc:
                clicks.failed.append(f"{url}: {type(exc).__name__}")
                return
            clicks.seconds.append(time.perf_counter() - begun)
            clicks.done.append(url)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await asyncio.gather(*(click(n, url.removeprefix(base_url), http) for n, url in enumerate(links)))
