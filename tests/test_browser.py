"""A manager in Chromium: logs in, sends a test mail, watches the outbox status turn to "Envoyé"."""

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from core.db import session_scope
from services.campaigns.models import Driver
from tests.support.browser import ARTIFACTS, browser_page
from tests.support.smtp import SmtpSink
from tests.support.waiting import result_of

pytestmark = pytest.mark.browser


@pytest.fixture
async def page(campaigns_server: str) -> AsyncIterator[object]:
    async with browser_page(campaigns_server) as page:
        yield page


async def test_manager_sends_a_test_mail_in_the_browser(page, dev_worker: Client, sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    await page.goto("/envois-test")
    assert "/login" in page.url
    await page.fill("#email", "gestionnaire@garonne.example")
    await page.fill("#password", "relais-demo")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/envois-test")
    assert await page.text_content("h1") == "Envoi de test"
    options = await page.locator("#driver_id option").all_text_contents()
    choice = next(o for o in options if "GAR" in o and "sans e-mail" not in o)
    [driver_id] = await page.select_option("#driver_id", label=choice)
    await page.fill("#subject", "Test navigateur pour {{prenom}}")
    await page.click("text=Envoyer un test")
    await page.wait_for_url("**/envois-test/*")
    # The status fragment refreshes by itself until the outbox says the mail left.
    await page.wait_for_selector('[data-status="sent"]', timeout=30_000)
    assert "Envoyé" in (await page.text_content("#outbox-status") or "")
    await page.screenshot(path=str(ARTIFACTS / "envoi-test.png"), full_page=True)
    with session_scope() as session:
        driver = session.get(Driver, int(driver_id))
        assert driver is not None
    [mail] = sink.to(driver.email or "")
    assert mail["Subject"] == f"Test navigateur pour {driver.prenom}"


async def test_manager_builds_and_launches_a_campaign_in_the_browser(  # type: ignore[no-untyped-def]
        page, campaigns_server: str, dev_worker: Client, sink: SmtpSink) -> None:
    from tests.support.factories import PASSWORD, make_org

    org = make_org(count=30, no_email_every=10)
    ARTIFACTS.mkdir(exist_ok=True)
    page.on("dialog", lambda dialog: dialog.accept())  # the "Voulez-vous vraiment … ?" confirmations
    await page.goto("/login")
    await page.fill("#email", org.manager_email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/campagnes")

    await page.click("text=Listes de diffusion")
    await page.click("text=+ Créer une liste de diffusion")
    await page.fill("#name", "Haute-Garonne")
    await page.select_option("#departements", ["31"])
    await page.click("button:has-text('Enregistrer')")
    await page.wait_for_url("**/destinataires")
    assert await page.text_content("#recipient-count") == "30"

    await page.click("nav.subnav >> text=Modèles de mail")
    await page.click("text=+ Créer un modèle")
    await page.fill("#name", "Relevé KM")
    await page.fill("#subject", "Relevé kilométrique")
    await page.fill("#body", "Bonjour ")
    await page.click("button[data-insert='{{prenom}}']")  # inserted at the cursor, as the seed shows
    await page.type("#body", ",\n\nMerci de saisir votre kilométrage : ")
    await page.click("button[data-insert='{{lien_connexion}}']")
    expected = "Bonjour {{prenom}},\n\nMerci de saisir votre kilométrage : {{lien_connexion}}"
    assert await page.input_value("#body") == expected
    await page.click("button:has-text('Prévisualiser')")
    assert "Accéder à mon Espace Conducteur" in (await page.text_content("#apercu") or "")
    await page.click("button:has-text('Enregistrer')")
    await page.wait_for_url("**/modeles/*")

    await page.click("nav.subnav >> text=Campagnes")
    await page.click("text=+ Créer une campagne")
    await page.fill("#name", "Relevé KM décembre")
    await page.select_option("#list_id", label="Haute-Garonne")
    await page.select_option("#template_id", label="Relevé KM")
    await page.click("button:has-text('Enregistrer')")
    await page.wait_for_url("**/campagnes/*")
    await page.click("button:has-text('Lancer la campagne')")
    # The progress bar fills without a reload, up to 100 %.
    await page.wait_for_selector('[data-percent="100"]', timeout=60_000)
    progress = await page.text_content("#campaign-progress") or ""
    assert "ENVOYE" in progress and "27 envoyé(s), 3 en erreur, sur 30" in progress
    await page.screenshot(path=str(ARTIFACTS / "campagne-envoyee.png"), full_page=True)
    assert len([m for m in sink.messages if org.slug in str(m["To"])]) == 27


async def test_suivi_validate_and_cancel_with_their_confirmations(  # type: ignore[no-untyped-def]
        page, campaigns_server: str, dev_worker: Client, sink: SmtpSink) -> None:
    from sqlalchemy import select

    from services.campaigns.models import FollowUp
    from tests.support.factories import PASSWORD, make_org
    from tests.test_campaign_workflow import _setup

    org = make_org(count=4)
    list_id, definition_id = _setup(org.id)
    answers: list[bool] = []
    questions: list[str] = []

    async def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        await (dialog.accept() if answers.pop(0) else dialog.dismiss())

    page.on("dialog", on_dialog)
    await page.goto("/login")
    await page.fill("#email", org.manager_email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto("/campagnes/nouvelle")
    await page.fill("#name", "Relevé KM janvier")
    await page.select_option("#list_id", str(list_id))
    await page.select_option("#kind", "workflow")
    await page.select_option("#workflow_definition_id", str(definition_id))
    await page.click("button:has-text('Enregistrer')")
    await page.wait_for_url("**/campagnes/*")
    answers.append(True)
    await page.click("button:has-text('Lancer la campagne')")
    await page.wait_for_selector("text=réussi")
    campaign_id = int(page.url.rstrip("/").split("/")[-1])
    await result_of(dev_worker, f"campaign-{campaign_id}")  # the launcher has started them all

    await page.click("nav.subnav >> text=Workflows utilisateurs")
    rows = page.locator("tbody tr")
    assert await rows.count() == 4
    first = rows.nth(0)
    answers.append(False)  # "Retour": nothing happens
    await first.locator("button[title=Valider]").click()
    assert "Voulez-vous vraiment valider ce workflow ?" in questions[-1]
    assert "En cours" in (await first.text_content() or "")
    answers.append(True)
    await first.locator("button[title=Valider]").click()
    await page.wait_for_selector("text=est validé")
    answers.append(True)
    await page.locator("tbody tr").nth(1).locator("button[title=Annuler]").click()
    await page.wait_for_selector("text=est annulé")
    assert questions[-1] == "Voulez-vous vraiment annuler ce workflow ?"
    await page.screenshot(path=str(ARTIFACTS / "workflows-utilisateurs.png"), full_page=True)
    with session_scope() as session:
        statuses = sorted(session.scalars(select(FollowUp.status).where(FollowUp.campaign_id == campaign_id)))
    assert statuses == ["annule", "en_cours", "en_cours", "valide"]
    badges = await page.locator("tbody .badge").all_text_contents()
    assert sorted(badges) == ["Annulé", "En cours", "En cours", "Validé"]
