"""Rules of seed 000 checked on the campaign form: a Contraventions workflow follows fines up, it is never the
workflow of a campaign (not offered in the picker, refused if posted anyway, nothing saved)."""

import re

import httpx
from sqlalchemy import func, select

from core.db import session_scope
from services.campaigns.models import Campaign, DistributionList, MailTemplate, WorkflowDefinition
from tests.support.factories import make_org
from tests.support.web import csrf_from, login, text


def _setup(org_id: int) -> tuple[int, int, int]:
    """A list, an activated Contraventions workflow and an activated Compteurs one: (list, fps, km)."""
    with session_scope() as session:
        template = MailTemplate(organisation_id=org_id, name="Relevé", subject="Relevé", body="Bonjour {{prenom}}")
        dlist = DistributionList(organisation_id=org_id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        steps = [{"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "", "template_id": template.id}]
        fps = WorkflowDefinition(organisation_id=org_id, name="WF-FPS", family="contraventions", enabled=True,
                                 steps=steps)
        km = WorkflowDefinition(organisation_id=org_id, name="WF-Relevé KM", family="compteurs", enabled=True,
                                steps=steps)
        session.add_all([fps, km])
        session.flush()
        return dlist.id, fps.id, km.id


def _picker(page: httpx.Response) -> dict[str, str]:
    select_html = page.text.split('name="workflow_definition_id"', 1)[1].split("</select>", 1)[0]
    return dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', select_html))


def _campaigns(org_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(Campaign.organisation_id == org_id)) or 0


async def test_a_contraventions_workflow_is_neither_offered_nor_accepted_in_a_campaign(
        http: httpx.AsyncClient) -> None:
    org = make_org()
    list_id, fps, km = _setup(org.id)
    await login(http, org.manager_email)
    form = await http.get("/campagnes/nouvelle")
    assert _picker(form) == {str(km): "WF-Relevé KM"}  # WF-FPS is not offered
    token = csrf_from(form.text)

    refused = await http.post("/campagnes/nouvelle", data={
        "csrf_token": token, "name": "Amendes de mars", "list_id": list_id, "kind": "workflow",
        "workflow_definition_id": fps})
    assert refused.status_code == 422
    assert ('<p class="field-error" id="workflow_definition_id-error">Le workflow « WF-FPS » est de la famille '
            "Contraventions : il suit les amendes (FPS) dès leur saisie dans la fiche matériel ou utilisateur et ne "
            "peut pas servir dans une campagne. Choisissez un workflow d'une autre famille.") in text(refused)
    assert _picker(refused) == {str(km): "WF-Relevé KM"}
    assert _campaigns(org.id) == 0

    saved = await http.post("/campagnes/nouvelle", data={
        "csrf_token": token, "name": "Relevé de mars", "list_id": list_id, "kind": "workflow",
        "workflow_definition_id": km})
    assert saved.status_code == 303 and _campaigns(org.id) == 1
    campaign_path = saved.headers["location"]
    assert "La campagne « Relevé de mars » est enregistrée." in text(await http.get(campaign_path))

    # Editing the pending campaign to use WF-FPS is refused the same way, and the campaign keeps its workflow.
    edited = await http.post(f"{campaign_path}/modifier", data={
        "csrf_token": token, "name": "Relevé de mars", "list_id": list_id, "kind": "workflow",
        "workflow_definition_id": fps})
    assert edited.status_code == 422 and "est de la famille Contraventions" in text(edited)
    with session_scope() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.organisation_id == org.id)).one()
        assert campaign.workflow_definition_id == km
