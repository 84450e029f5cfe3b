"""Issue 12, campaigns items 12–14 over HTTP: the campaigns table's row actions, the creation form, archiving
both ways; the Matériels list; the lists' plates and org-chart people."""

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client

from core.db import session_scope
from core.models import User
from core.security import hash_password
from services.campaigns.models import Campaign, DistributionList, MailTemplate, WorkflowDefinition
from tests.support.browser import browser_page
from tests.support.factories import PASSWORD, TestOrg, make_org
from tests.support.web import csrf_from, login, text

ACTIONS = ("Éditer la campagne", "Afficher les destinataires", "Lancer la campagne", "Archiver la campagne")


def _setup(org: TestOrg, *, enabled: bool = True) -> dict[str, int]:
    """A list of every driver, a template, a Compteurs workflow, and one pending campaign of each type."""
    with session_scope() as session:
        template = MailTemplate(organisation_id=org.id, name="Relevé KM", subject="Relevé",
                                body="Bonjour {{prenom}},\n\n{{lien_connexion}}")
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        definition = WorkflowDefinition(organisation_id=org.id, name="WF-Relevé KM", family="compteurs",
                                        enabled=enabled, steps=[
                                            {"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "",
                                             "template_id": template.id},
                                            {"type": "attente", "name": "Attente 5j", "days": 5}])
        session.add(definition)
        session.flush()
        email = Campaign(organisation_id=org.id, name="Info Email", kind="email", list_id=dlist.id,
                         template_id=template.id)
        workflow = Campaign(organisation_id=org.id, name="Relevé Workflow", kind="workflow", list_id=dlist.id,
                            workflow_definition_id=definition.id)
        session.add_all([email, workflow])
        session.flush()
        return {"list": dlist.id, "template": template.id, "definition": definition.id, "email": email.id,
                "workflow": workflow.id}


def _row(page: str, name: str) -> str:
    """The table row of the campaign `name`."""
    match = re.search(rf"<tr>\s*<td><a href=\"/campagnes/\d+\">{re.escape(name)}</a>.*?</tr>", page, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def _status(campaign_id: int) -> tuple[str, bool]:
    with session_scope() as session:
        campaign = session.get_one(Campaign, campaign_id)
        return campaign.status, campaign.archived


async def test_row_actions_are_icons_with_tooltips(http: httpx.AsyncClient) -> None:
    org = make_org(count=2)
    ids = _setup(org)
    await login(http, org.manager_email)
    page = text(await http.get("/campagnes"))
    row = _row(page, "Info Email")
    for title in ACTIONS:
        assert f'title="{title}"' in row
    assert f'href="/campagnes/{ids["email"]}/modifier"' in row and f'action="/campagnes/{ids["email"]}/lancer"' in row
    assert row.count("<svg") == 4 and 'aria-label="Lancer la campagne « Info Email »"' in row
    recipients = text(await http.get(f"/campagnes/{ids['email']}/destinataires"))
    assert "Destinataires de la campagne « Info Email »" in recipients and "Nom001" in recipients

    # A viewer sees who the campaign goes to, and no action that changes anything.
    with session_scope() as session:
        session.add(User(organisation_id=org.id, email=f"lecture@{org.slug}.example", full_name="Lecteur",
                         role="viewer", password_hash=hash_password(PASSWORD)))
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as viewer:
        await login(viewer, f"lecture@{org.slug}.example")
        row = _row(text(await viewer.get("/campagnes")), "Info Email")
    assert 'title="Afficher les destinataires"' in row
    assert not any(f'title="{t}"' in row for t in ACTIONS if t != "Afficher les destinataires")


async def test_launch_from_the_table_shows_the_outcome_on_the_table(http: httpx.AsyncClient,
                                                                    dev_worker: Client) -> None:
    org = make_org(count=2)
    ids = _setup(org)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes")).text)
    launched = await http.post(f"/campagnes/{ids['email']}/lancer", data={"csrf_token": token, "back": "liste"})
    assert launched.status_code == 303 and launched.headers["location"] == "/campagnes"
    page = text(await http.get("/campagnes"))
    assert "Lancement de la campagne : « Info Email » réussi" in page
    row = _row(page, "Info Email")
    assert "EN ATTENTE" not in row and 'title="Lancer la campagne"' not in row and 'title="Éditer' not in row
    assert _status(ids["email"])[0] in ("sending", "sent")


async def test_a_workflow_deactivated_meanwhile_is_refused_from_the_table(http: httpx.AsyncClient) -> None:
    org = make_org(count=2)
    ids = _setup(org)
    with session_scope() as session:
        session.get_one(WorkflowDefinition, ids["definition"]).enabled = False
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes")).text)
    refused = await http.post(f"/campagnes/{ids['workflow']}/lancer", data={"csrf_token": token, "back": "liste"})
    assert refused.headers["location"] == "/campagnes"
    page = text(await http.get("/campagnes"))
    assert ('<div class="flash flash-error" role="status">Le workflow « WF-Relevé KM » de cette campagne n\'est '
            "plus activé : lancement refusé.</div>") in page
    assert "EN ATTENTE" in _row(page, "Relevé Workflow") and _status(ids["workflow"]) == ("pending", False)


async def test_the_table_sends_to_the_page_when_some_recipients_cannot_answer(http: httpx.AsyncClient) -> None:
    org = make_org(count=3, with_vehicle=False)  # a Compteurs workflow: nobody has a vehicle to read
    ids = _setup(org)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes")).text)
    sent = await http.post(f"/campagnes/{ids['workflow']}/lancer", data={"csrf_token": token, "back": "liste"})
    assert sent.headers["location"] == f"/campagnes/{ids['workflow']}"
    page = text(await http.get(sent.headers["location"]))
    assert "Avant le lancement : 3 destinataire(s) ne pourront pas répondre." in page
    assert "Les laisser de côté" in page and _status(ids["workflow"]) == ("pending", False)


async def test_archived_campaigns_can_be_unarchived(http: httpx.AsyncClient) -> None:
    org = make_org(count=1)
    ids = _setup(org)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/campagnes")).text)
    await http.post(f"/campagnes/{ids['email']}/archiver", data={"csrf_token": token})
    page = text(await http.get("/campagnes"))
    assert "La campagne « Info Email » est archivée." in page and "Info Email</a>" not in page
    archived = text(await http.get("/campagnes?archivees=true"))
    row = _row(archived, "Info Email")
    assert 'title="Désarchiver la campagne"' in row and 'title="Lancer la campagne"' not in row
    assert "Désarchiver</button>" in text(await http.get(f"/campagnes/{ids['email']}"))
    back = await http.post(f"/campagnes/{ids['email']}/desarchiver", data={"csrf_token": token})
    assert back.headers["location"] == "/campagnes"
    page = text(await http.get("/campagnes"))
    assert "La campagne « Info Email » est désarchivée." in page
    assert "EN ATTENTE" in _row(page, "Info Email") and _status(ids["email"]) == ("pending", False)
    again = await http.post(f"/campagnes/{ids['email']}/desarchiver", data={"csrf_token": token})
    assert "La campagne « Info Email » n'est pas archivée." in text(await http.get(again.headers["location"]))


async def test_the_demo_has_an_archived_campaign_to_bring_back(http: httpx.AsyncClient) -> None:
    await login(http, "gestionnaire@garonne.example")
    row = _row(text(await http.get("/campagnes?archivees=true")), "Infos permis Corse (archivée)")
    assert 'title="Désarchiver la campagne"' in row


async def test_the_form_checks_the_picker_that_fits_the_type(http: httpx.AsyncClient) -> None:
    org = make_org(count=1)
    ids = _setup(org)
    await login(http, org.manager_email)
    form = await http.get("/campagnes/nouvelle")
    page = text(form)
    assert '<div data-shown-when="kind=email">\n  <label for="template_id">' in page
    assert '<div data-shown-when="kind=workflow">\n  <label for="workflow_definition_id">' in page
    token = csrf_from(form.text)
    # Without script both pickers are there: the server still wants the one of the chosen type.
    email = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": "X", "list_id": ids["list"],
                                                         "kind": "email", "workflow_definition_id": ids["definition"]})
    assert email.status_code == 422 and "Choisissez un modèle d'email." in text(email)
    workflow = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": "X", "list_id": ids["list"],
                                                            "kind": "workflow", "template_id": ids["template"]})
    assert workflow.status_code == 422 and "Choisissez un workflow." in text(workflow)
    saved = await http.post("/campagnes/nouvelle", data={"csrf_token": token, "name": "X", "list_id": ids["list"],
                                                         "kind": "email", "template_id": ids["template"],
                                                         "workflow_definition_id": ids["definition"]})
    assert saved.status_code == 303
    with session_scope() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.organisation_id == org.id,
                                                          Campaign.name == "X")).one()
        assert (campaign.template_id, campaign.workflow_definition_id) == (ids["template"], None)


@pytest.mark.browser
async def test_the_form_shows_only_the_picker_of_the_chosen_type(campaigns_server: str) -> None:
    org = make_org(count=1)
    _setup(org)
    async with browser_page(campaigns_server) as opened:
        page: Any = opened
        await page.goto("/login")
        await page.fill("#email", org.manager_email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.goto("/campagnes/nouvelle")
        template, workflow = page.locator("#template_id"), page.locator("#workflow_definition_id")
        assert await template.is_visible() and not await workflow.is_visible()
        await page.select_option("#kind", "workflow")
        assert await workflow.is_visible() and not await template.is_visible()
        await page.select_option("#kind", "email")
        assert await template.is_visible() and not await workflow.is_visible()
