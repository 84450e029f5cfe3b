"""Nobody is asked what they cannot answer, and the driver sees the state that is.

A Relevé KM (Compteurs) Workflow campaign says, before its launch, how many recipients have no vehicle or no
address, and can leave them out (`launch.launch_campaign(leave_out_unable=True)`); after his reading, the driver's
vehicle block says «Relevé reçu le …» and the request says it is closed.
"""

import re

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from core.db import session_scope
from core.models import User
from core.settings import get_settings
from services.campaigns.models import Campaign, CampaignRecipient, Vehicle
from services.campaigns.service import emailsend, launch
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_text
from tests.support.waiting import result_of, wait_until
from tests.support.web import csrf_from, login, text
from tests.test_campaign_workflow import _setup


def _fleet() -> tuple[int, str, int, int]:
    """3 drivers with a vehicle and an address, 2 without a vehicle, 1 without an address:
    (org id, manager, list id, definition id)."""
    def spec(n: int, *, vehicle: bool = True, email: bool = True) -> dict[str, object]:
        return {"matricule": f"R{n:03d}", "nom": f"Nom{n}", "prenom": f"Prénom{n}", "code_postal": "31000",
                "departement": "31", "vehicle": vehicle, "email": f"c{n}@{tag}.example" if email else None}

    tag = f"reach{id(spec)}"
    org = make_org(drivers=[spec(1), spec(2), spec(3), spec(4, vehicle=False), spec(5, vehicle=False),
                            spec(6, email=False)])
    list_id, definition_id = _setup(org.id)
    return org.id, org.manager_email, list_id, definition_id


def _campaign(org_id: int, list_id: int, definition_id: int) -> int:
    with session_scope() as session:
        campaign = Campaign(organisation_id=org_id, name="Relevé KM", kind="workflow", list_id=list_id,
                            workflow_definition_id=definition_id)
        session.add(campaign)
        session.flush()
        return campaign.id


def test_launch_leaves_out_who_cannot_answer_only_when_asked() -> None:
    org_id, manager, list_id, definition_id = _fleet()
    for leave_out, frozen in ((True, 3), (False, 6)):
        campaign_id = _campaign(org_id, list_id, definition_id)
        with session_scope() as session:
            campaign = session.get(Campaign, campaign_id)
            user = session.scalars(select(User).where(User.email == manager)).one()
            assert campaign is not None
            launch.launch_campaign(session, get_settings(), campaign=campaign, user=user, leave_out_unable=leave_out)
            assert campaign.status == "sending" and campaign.leave_out_unable is leave_out
            assert emailsend.freeze_recipients(session, campaign_id=campaign_id) == frozen
            session.rollback()  # nothing queued for the relay: the launch is checked, not run


async def test_relevé_km_campaign_warns_leaves_out_and_the_driver_sees_his_reading(
        http: httpx.AsyncClient, dev_worker: Client, sink: SmtpSink) -> None:
    org_id, manager, list_id, definition_id = _fleet()
    await login(http, manager)
    campaign_id = _campaign(org_id, list_id, definition_id)
    page = await http.get(f"/campagnes/{campaign_id}")
    warning = text(page)
    assert "Avant le lancement : 3 destinataire(s) ne pourront pas répondre" in warning
    assert ("2 destinataire(s) n'ont aucun véhicule affecté : ils ne peuvent pas donner de relevé kilométrique"
            in warning)
    assert "1 destinataire(s) n'ont pas d'adresse e-mail" in warning
    assert 'name="leave_out" value="1" form="launch-form" checked' in page.text

    await http.post(f"/campagnes/{campaign_id}/lancer", data={"csrf_token": csrf_from(page.text), "leave_out": "1"})
    assert await result_of(dev_worker, f"campaign-{campaign_id}") == 3
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(CampaignRecipient.campaign_id == campaign_id)) == 3
    launched = text(await http.get(f"/campagnes/{campaign_id}"))
    assert "laissés de côté au lancement" in launched and "ne pourront pas répondre" not in launched

    await wait_until(lambda: len([m for m in sink.messages if "reach" in str(m["To"])]) >= 3, what="3 mails")
    mail = next(m for m in sink.messages if "c1@" in str(m["To"]))
    link = re.search(r"(http://\S+/espace-conducteur/\S+)", body_text(mail))
    assert link
    with session_scope() as session:
        vehicle = session.scalars(select(Vehicle).where(Vehicle.organisation_id == org_id)
                                  .order_by(Vehicle.immatriculation)).first()
        assert vehicle is not None
    async with httpx.AsyncClient(timeout=30) as driver:
        before = text(await driver.get(link.group(1)))
        assert "Relevé demandé" in before and "en attente de votre réponse" in before
        done = await driver.post(f"{link.group(1)}/releve/{vehicle.id}", data={"km": "20000"})
        for page_html in (text(done), text(await driver.get(link.group(1)))):
            answer = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page_html))  # what a reader sees
            assert "Relevé demandé" not in answer
            assert re.search(r"Relevé reçu le \d\d/\d\d/\d{4} à \d\dh\d\d", answer)
            assert "20 000 km le" in answer
            assert re.search(r"WF-Relevé KM : demande close le .* \(Validé — Action réalisée par le conducteur\)",
                             answer)


async def test_the_demo_relevé_km_workflow_campaign_warns_before_launch(http: httpx.AsyncClient) -> None:
    with session_scope() as session:
        campaign_id = session.scalars(select(Campaign.id).where(
            Campaign.name == "Relevé KM workflow Haute-Garonne")).one()
    await login(http, "gestionnaire@garonne.example")
    page = text(await http.get(f"/campagnes/{campaign_id}"))
    found = re.search(r"(\d+) destinataire\(s\) n'ont aucun véhicule affecté", page)
    assert found and int(found.group(1)) > 0 and "Les laisser de côté" in page
