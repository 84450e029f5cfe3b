"""Phone first: on a 390 × 844 touch screen, every public page kind and one mail of every kind fit the screen.

`document.documentElement.scrollWidth <= clientWidth` (on a mobile viewport `window.innerWidth` grows with the
content and proves nothing); tap targets are at least 44 px high; a screenshot of each is kept in test-artifacts/.
Mails come from the outbox, written by the production code paths (campaign batch, workflow launcher page, test
mail activity, removals mails), and are checked with and without their <style> (many clients strip it).
"""

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update
from temporalio.client import Client

from activities.campaigns import CampaignActivities
from core import outbox, passwordreset
from core.db import session_scope
from core.models import OutboxMessage
from core.settings import get_settings
from services.campaigns.links import driver_space_url
from services.campaigns.models import (
    Campaign,
    DistributionList,
    Fine,
    FollowUp,
    MailTemplate,
    TestMail,
    WorkflowDefinition,
)
from services.campaigns.service import driverlaunch, emailsend
from services.removals.models import Mandate
from services.removals.service import mails, queries
from services.removals.service.tokens import accept_all_url, mandate_urls
from tests.support.browser import ARTIFACTS, browser_page
from tests.support.factories import make_org
from tests.support.removals import PASSWORD, create_request, line, make_deposer, make_requester
from workflows.data.campaigns import LaunchPage, PrepareBatch

pytestmark = pytest.mark.browser

BODY = ("Bonjour {{prenom}} {{nom}},\n\nMerci de nous donner le kilométrage de votre {{vehicule_actuel}} "
        "(dernier relevé : {{dernier_releve}} le {{date_dernier_releve}}).\n\n{{lien_connexion}}\n\n"
        "Sans réponse de votre part, une relance vous sera adressée.")
LONG = "Parking-souterrain-niveau-moins-trois-place-numéro-quarante-deux-près-de-l'ascenseur-côté-sortie-piétons"
MEASURE = """() => {
  const root = document.documentElement;
  const small = [...document.querySelectorAll(
      'button, a.button, a.mail-button, input:not([type=hidden]):not([type=checkbox]), select, textarea, label.check')]
    .filter((el) => el.getClientRects().length)
    .filter((el) => el.getBoundingClientRect().height < 44)
    .map((el) => `${el.tagName.toLowerCase()} « ${(el.textContent || el.name || '').trim().slice(0, 40)} » `
                 + `${Math.round(el.getBoundingClientRect().height)} px`);
  return {scroll: root.scrollWidth, client: root.clientWidth, small,
          viewport: document.querySelector('meta[name=viewport]')?.content || ''};
}"""


@pytest.fixture
async def phone(campaigns_server: str) -> AsyncIterator[object]:
    async with browser_page(campaigns_server, phone=True) as page:
        yield page


async def _fits(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """The page fits the phone's width, its tap targets are big enough; a screenshot is kept either way."""
    ARTIFACTS.mkdir(exist_ok=True)
    found = await page.evaluate(MEASURE)
    await page.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
    # Without a viewport meta a phone lays the page out 980 px wide and shrinks it: "fits" would prove nothing.
    assert found["client"] == 390, f"{name}: laid out {found['client']} px wide (viewport meta?)"
    assert found["scroll"] <= found["client"], f"{name}: {found['scroll']} px wide on a {found['client']} px screen"
    assert "width=device-width" in found["viewport"], f"{name}: no viewport meta"
    assert not found["small"], f"{name}: tap targets under 44 px: {found['small']}"


def _campaign_mails() -> tuple[list[int], list[str]]:
    """A fleet whose mails are written to the outbox by the production paths: an e-mail campaign's batch, a
    Workflow campaign's first page, a test mail. Returns (outbox ids, the drivers' Espace Conducteur URLs)."""
    settings = get_settings()
    org = make_org(drivers=[
        {"matricule": "PH001", "nom": "Delacroix-Montmorency", "prenom": "Marie-Françoise",
         "email": "marie-francoise.delacroix-montmorency@tres-long-domaine-de-messagerie.example",
         "code_postal": "31000", "departement": "31", "vehicle": True},
        {"matricule": "PH002", "nom": "Sans", "prenom": "Véhicule", "email": "sans.vehicule@exemple.example",
         "code_postal": "31000", "departement": "31", "vehicle": False},
    ])
    driver_id = org.driver_ids[0]
    with session_scope() as session:
        template = MailTemplate(organisation_id=org.id, name="Relevé KM", subject="Relevé kilométrique", body=BODY)
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        definition = WorkflowDefinition(organisation_id=org.id, name="WF-Relevé KM", family="compteurs", enabled=True,
                                        steps=[{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "",
                                                "template_id": template.id}])
        session.add(definition)
        session.flush()
        email = Campaign(organisation_id=org.id, name="Relevé KM", kind="email", list_id=dlist.id,
                         template_id=template.id)
        flow = Campaign(organisation_id=org.id, name="Relevé KM (workflow)", kind="workflow", list_id=dlist.id,
                        workflow_definition_id=definition.id)
        test_mail = TestMail(organisation_id=org.id, driver_id=driver_id, subject="Test", body=BODY)
        session.add_all([email, flow, test_mail])
        session.flush()
        session.add(Fine(organisation_id=org.id, numero="FPS-2026-000000000000123456",
                         date_infraction=date(2026, 11, 2), immatriculation="AB-000-CD", driver_id=driver_id,
                         montant=35, source="Ajout manuel"))
        for campaign in (email, flow):
            emailsend.freeze_recipients(session, campaign_id=campaign.id)
        emailsend.prepare_batch(session, settings, PrepareBatch(email.id, 0, 10))
        page = driverlaunch.prepare_page(session, settings, LaunchPage(flow.id, 0, 10, "unused", "unused"))
        assert page is not None
        test_mail_id = test_mail.id
    CampaignActivities(settings).prepare_test_mail(test_mail_id)
    with session_scope() as session:
        ids = list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.organisation_id == org.id)
                                   .order_by(OutboxMessage.id)))
    return ids, [driver_space_url(settings, d) for d in org.driver_ids]


def _removal_mails() -> tuple[list[int], dict[str, str], str]:
    """A request of 3 vehicles told to a deposer, and every removals mail kind in the outbox.
    Returns (outbox ids, link URLs by kind, the deposer's login)."""
    settings = get_settings()
    requester, deposer = make_requester(3), make_deposer()
    request_id, _ = create_request(requester, [line(requester, vin, deposer, lieu=LONG, comment="Clés à l'accueil, "
                                                    "demander M. Jean-Baptiste Lefèvre-Dumoulin au poste 4242")
                                               for vin in requester.vins])
    with session_scope() as session:
        session.execute(update(Mandate).where(Mandate.request_id == request_id).values(status="prevenu"))
        rows = queries.of_request(session, request_id)
        done = dataclasses.replace(rows[0], status="effectuee", removal_date=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                                   box_digits="1234567", technician="Jean-Baptiste Lefèvre-Dumoulin")
        messages = [mails.deposer_notification(rows, settings),
                    mails.deposer_notification(rows, settings, reminder=True),
                    mails.requester_received([rows], settings), mails.requester_alert(done, "effectuee", settings),
                    mails.deposer_cancelled(rows[1]), mails.requester_overdue(rows, settings)]
        ids = outbox.enqueue_many(session, settings=settings, organisation_id=rows[0].organisation_id,
                                  messages=messages)
        accept, refuse, confirm = mandate_urls(settings, rows[0].id)
        links = {"accepter": accept, "refuser": refuse, "signaler": confirm,
                 "accepter-tout": accept_all_url(settings, request_id, deposer.id)}
        return [ids[m.key] for m in messages], links, deposer.email


def _notice_mails() -> list[int]:
    """The insured client's «Avis d'échéance» mail as the robot builds it (seed's template, long values), in the
    outbox."""
    from datetime import date
    from decimal import Decimal

    from services.notices.models import Client, Contract, LegalEntity, Notice, Receipt, RobotSettings
    from services.notices.service import mailtemplate, robot
    from tests.support.notices import make_broker

    broker = make_broker()
    entity = LegalEntity(name="Cabinet Lambert Assurances — Agence de Juvisy-sur-Orge", phone="01 99 00 24 24",
                         email="contact@lambert-assurances.example", letter_town="JUVISY-SUR-ORGE")
    client = Client(number="CA13", title="M. et Mme", last_name="Lefèvre-Dumoulin de la Tour d'Auvergne",
                    first_name="Jean-Baptiste", address1="1 avenue des Sables", postal_code="91350", town="CRIGNY",
                    account_manager="Hélène Lambert")
    contract = Contract(number="MRH-2027-000123456789", insurer="CIGA - AXA", category="Multirisques habitation")
    receipt = Receipt(period_start=date(2027, 1, 1), period_end=date(2027, 12, 31), effect_date=date(2027, 1, 1),
                      total_ttc=Decimal("1457.63"))
    notice = Notice(number=19700)
    fields = mailtemplate.values(notice=notice, client=client, contract=contract, receipt=receipt, entity=entity)
    settings = get_settings()
    template = RobotSettings(sender_name="Service envoi mail", bcc=[], reply_to=None, from_address=None,
                             subject=RobotSettings.subject.default.arg,  # type: ignore[union-attr]
                             html_body="<p>Bonjour {Adr_Titre} {Adr_Prenom} {Adr_Nom},</p><p>Veuillez trouver ci-joint "
                                       "votre avis d'échéance n°{Num_Avis} du contrat {Contrat} ({Compagnie}) pour "
                                       "la période du {Periode_Du} au {Periode_Au} : {Montant}.</p>",
                             text_body=RobotSettings.text_body.default.arg)  # type: ignore[union-attr]
    message = robot.build_message(template, fields, key=f"avis-phone-{broker.slug}", to="client@assure.example",
                                  settings=settings, document_key="notices/none.pdf", filename="avis.pdf")
    with session_scope() as session:
        return [outbox.enqueue_many(session, settings=settings, organisation_id=broker.id,
                                    messages=[message])[message.key]]


def _password_reset_mail(email: str, base_url: str) -> tuple[str, str]:
    """The «Mot de passe oublié ?» mail of `email`, written by the production path: (its HTML, its link)."""
    with session_scope() as session:
        passwordreset.request_reset(session, get_settings(), email=email, client="192.0.2.1", base_url=base_url)
    with session_scope() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.recipients == [email],
                                                          OutboxMessage.key.like("password-reset-%"))).one()
        link = re.findall(r"https?://\S+/mot-de-passe/nouveau/\S+", row.text_body)[0]
        return row.html_body or "", link


async def test_every_public_page_and_mail_fits_a_phone(phone, removals_server: str,  # type: ignore[no-untyped-def]
                                                       dev_worker: Client) -> None:
    campaign_ids, (space, space_without_vehicle) = _campaign_mails()
    removal_ids, links, deposer_email = _removal_mails()
    notice_ids = _notice_mails()
    with session_scope() as session:
        space_driver = session.scalars(select(FollowUp).order_by(FollowUp.id.desc())).first()
        assert space_driver is not None and space_driver.status == "en_cours"  # the space shows «Relevé demandé»
        kinds = {m.id: m.key for m in session.scalars(select(OutboxMessage).where(
            OutboxMessage.id.in_(campaign_ids + removal_ids + notice_ids)))}
        html = {m.id: m.html_body or "" for m in session.scalars(select(OutboxMessage).where(
            OutboxMessage.id.in_(campaign_ids + removal_ids + notice_ids)))}
    # Both drivers' campaign mail and workflow first mail, the test mail; six removals mails.
    assert len(campaign_ids) == 5 and len(removal_ids) == 6
    for number, outbox_id in enumerate(campaign_ids + removal_ids + notice_ids, start=1):
        name = f"mail-{number:02d}-" + re.sub(r"-\d+", "", kinds[outbox_id])  # mail-06-removal-notify-deposer
        assert html[outbox_id].startswith("<!doctype html>"), f"{kinds[outbox_id]}: not in the mail layout"
        await phone.set_content(html[outbox_id])
        await _fits(phone, name)
        await phone.evaluate("() => document.querySelectorAll('style').forEach((s) => s.remove())")
        await _fits(phone, name + "-sans-style")

    # Espace Conducteur (vehicle, licence form, fine), and a link that is no good.
    await phone.goto(space)
    assert "Relevé demandé" in (await phone.text_content("main") or "")
    dates = await phone.locator("input[placeholder='jj/mm/aaaa']").evaluate_all("els => els.map((e) => e.value)")
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", dates[0]), dates  # «Date du relevé», today in French
    await _fits(phone, "espace-conducteur")
    await phone.goto(space_without_vehicle)
    assert "Aucun véhicule ne vous est affecté" in (await phone.text_content("main") or "")
    await _fits(phone, "espace-conducteur-sans-vehicule")
    await phone.goto(space[:-6] + "abcdef")
    await _fits(phone, "espace-conducteur-lien-invalide")
    # Action-link confirmation pages (core.linkpages: the test mail's acknowledgement).
    with session_scope() as session:
        ack = session.scalars(select(OutboxMessage.text_body).where(OutboxMessage.id == campaign_ids[-1])).one()
    await phone.goto(ack.rsplit("Confirmer la réception : ", 1)[1].strip())
    await _fits(phone, "lien-accuse-reception")
    # The deposer's mail links: Accepter, Refuser (reason), Signaler (report form), Accepter tout (vehicle list).
    for kind, url in links.items():
        await phone.goto(url)
        assert await phone.locator("form button.primary").count() == 1, kind
        await _fits(phone, f"lien-{kind}")
    # The deposer's extranet: login, list, mandate, report.
    await phone.goto(f"{removals_server}/login")
    await _fits(phone, "connexion")
    # «Mot de passe oublié ?»: the form, the mail and its link's page (core.passwordreset).
    await phone.goto(f"{removals_server}/mot-de-passe-oublie")
    await _fits(phone, "mot-de-passe-oublie")
    reset_html, reset_link = _password_reset_mail(deposer_email, removals_server)
    await phone.set_content(reset_html)
    await _fits(phone, "mail-mot-de-passe")
    await phone.goto(reset_link)
    assert await phone.locator("form button.primary").count() == 1
    await _fits(phone, "nouveau-mot-de-passe")
    await phone.goto(f"{removals_server}/login")
    await phone.fill("#email", deposer_email)
    await phone.fill("#password", PASSWORD)
    await phone.click("button[type=submit]")
    await phone.goto(f"{removals_server}/deposes")
    await _fits(phone, "extranet-liste")
    await phone.locator("#mandates a.badge").first.click()
    await phone.wait_for_url("**/deposes/*")
    await _fits(phone, "extranet-demande")
    await phone.goto(phone.url + "/signaler")
    await _fits(phone, "extranet-signaler")
