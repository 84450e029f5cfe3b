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


# --- item 13: the lists' plates, and the organisation chart's people ---

async def test_the_drivers_file_brings_the_org_chart(http: httpx.AsyncClient) -> None:
    from tests.test_fleet import DRIVER_HEADERS, driver_row, upload, xlsx

    org = make_org()
    await login(http, org.manager_email)
    bad = xlsx(DRIVER_HEADERS, driver_row("P1", **{"Valideur": "Hélène Horsflotte", "Email valideur": None}))
    refused = await upload(http, "/utilisateurs", bad)
    assert refused.status_code == 422
    assert ("Ligne 2, colonne « Email valideur » : adresse e-mail obligatoire quand un valideur est nommé : c'est "
            "elle qui identifie cette personne dans l'organigramme") in text(refused)
    good = xlsx(DRIVER_HEADERS,
                driver_row("P1", Email="p1@exemple.fr", **{"Valideur": "Hélène Horsflotte",
                                                            "Email valideur": "helene@exemple.fr"}),
                driver_row("P2", Email="p2@exemple.fr", **{"Valideur": "Hélène Horsflotte",
                                                            "Email valideur": "Helene@exemple.fr"}),
                driver_row("P3", Email="rita@exemple.fr", Nom="Roméo", Prénom="Rita"))
    done = await upload(http, "/utilisateurs", good)
    assert done.status_code == 303
    assert ("3 utilisateurs importés (3 créés, 0 mis à jour) ; organigramme : 2 valideur(s) et responsable(s), "
            "dont 1 qui ne sont pas utilisateurs") in text(await http.get("/utilisateurs"))
    chart = text(await http.get("/organigramme"))
    helene = re.search(r"<tr>\s*<td>Hélène Horsflotte</td>.*?</tr>", chart, re.S)
    assert helene and "helene@exemple.fr" in helene.group(0) and "Hors utilisateurs" in helene.group(0)
    assert "2 utilisateurs" in helene.group(0)
    rita = re.search(r"<tr>\s*<td>Rita Roméo</td>.*?</tr>", chart, re.S)
    assert rita and "3 utilisateurs" in rita.group(0) and ">Oui</a>" in rita.group(0)

    form = await http.get("/listes/nouvelle")
    assert ('<option value="helene@exemple.fr" >Hélène Horsflotte (helene@exemple.fr) — 2 utilisateurs, '
            "hors utilisateurs</option>") in text(form)
    created = await http.post("/listes/nouvelle", data={"csrf_token": csrf_from(form.text), "name": "Équipe Hélène",
                                                        "valideur": "inclure", "valideurs": ["helene@exemple.fr"]})
    assert created.status_code == 303
    page = text(await http.get(created.headers["location"]))
    assert '<strong id="recipient-count">2</strong>' in page and "<td>P1</td>" in page and "<td>P2</td>" in page
    assert "Valideur : inclure les utilisateurs validés par helene@exemple.fr" in page


async def test_a_list_includes_or_excludes_picked_plates(http: httpx.AsyncClient) -> None:
    org = make_org(count=3)  # M0001..M0003 drive AB-000-CD..AB-002-CD
    await login(http, org.manager_email)
    form = await http.get("/listes/nouvelle")
    page = text(form)
    assert '<input type="search" id="plaques-search" data-option-search="plaques" hidden' in page
    assert '<option value="AB-001-CD" >AB-001-CD — Nom002 Prénom2</option>' in page
    token = csrf_from(form.text)
    unknown = await http.post("/listes/nouvelle", data={"csrf_token": token, "name": "Sauf un",
                                                        "immatriculation": "exclure", "plaques": ["ZZ-999-ZZ"]})
    assert unknown.status_code == 422
    assert "Immatriculation : ZZ-999-ZZ inconnu(s) dans votre flotte." in text(unknown)
    no_mode = await http.post("/listes/nouvelle", data={"csrf_token": token, "name": "Sauf un",
                                                        "plaques": ["AB-001-CD"]})
    assert no_mode.status_code == 422
    assert "Immatriculation : choisissez Inclure ou Exclure pour les valeurs choisies." in text(no_mode)
    with session_scope() as session:
        assert session.scalars(select(DistributionList).where(DistributionList.organisation_id == org.id)).all() == []
    created = await http.post("/listes/nouvelle", data={"csrf_token": token, "name": "Sauf un",
                                                        "immatriculation": "exclure", "plaques": ["AB-001-CD"]})
    recipients = text(await http.get(created.headers["location"]))
    assert '<strong id="recipient-count">2</strong>' in recipients and "Nom002" not in recipients
    assert "Immatriculation : exclure les utilisateurs des matériels AB-001-CD" in recipients
    list_id = int(created.headers["location"].split("/")[2])
    edit = text(await http.get(f"/listes/{list_id}/modifier"))
    assert '<option value="AB-001-CD" selected>AB-001-CD — Nom002 Prénom2</option>' in edit


async def test_the_demo_org_chart_has_a_valideur_who_drives_nothing(http: httpx.AsyncClient) -> None:
    await login(http, "gestionnaire@garonne.example")
    chart = text(await http.get("/organigramme"))
    helene = re.search(r"<tr>\s*<td>Hélène Castaing</td>.*?</tr>", chart, re.S)
    assert helene and "Hors utilisateurs" in helene.group(0)
    lists = text(await http.get("/listes"))
    link = re.search(r'<a href="(/listes/\d+/destinataires)">Équipe validée par Hélène Castaing</a>', lists)
    assert link
    page = text(await http.get(link.group(1)))
    count = re.search(r'<strong id="recipient-count">(\d+)</strong>', page)
    assert count and int(count.group(1)) > 5


@pytest.mark.browser
async def test_the_plate_search_narrows_the_multi_select(campaigns_server: str) -> None:
    org = make_org(count=3)
    async with browser_page(campaigns_server) as opened:
        page: Any = opened
        await page.goto("/login")
        await page.fill("#email", org.manager_email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.goto("/listes/nouvelle")
        await page.select_option("#plaques", ["AB-000-CD"])
        shown = "os => os.filter(o => !o.hidden).map(o => o.value)"
        await page.fill("#plaques-search", "002-cd")
        assert await page.eval_on_selector_all("#plaques option", shown) == ["AB-000-CD", "AB-002-CD"]  # chosen stays
        await page.fill("#plaques-search", "prénom2")  # the holder's name finds the plate too
        assert await page.eval_on_selector_all("#plaques option", shown) == ["AB-000-CD", "AB-001-CD"]
        await page.select_option("#immatriculation", "inclure")
        await page.fill("#name", "Deux plaques")
        await page.select_option("#plaques", ["AB-000-CD", "AB-002-CD"])
        await page.click("button.primary")
        await page.wait_for_url("**/destinataires")
        assert await page.text_content("#recipient-count") == "2"
