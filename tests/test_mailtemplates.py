"""Modèles de mail: only known fields, never an external link, a preview for a chosen driver."""

import httpx
import pytest
from sqlalchemy import func, select

from core.db import session_scope
from services.campaigns.models import MailTemplate
from services.campaigns.service.mailtemplates import check_text, find_external_link
from tests.support.factories import TestOrg, make_org
from tests.support.web import csrf_from, login, text


@pytest.mark.parametrize("link", [
    "http://exemple.fr", "https://www.exemple.com/page", "HTTPS://EXEMPLE.COM", "www.exemple.fr",
    "WWW.Exemple.org", "javascript:alert(1)", "JavaScript :alert(1)", "exemple.com", "mon-site.fr/contact",
    "data:text/html;base64,PHNjcmlwdD4=", "mailto:chef@exemple.fr", "ftp://fichiers.exemple.net",
    "ｈｔｔｐｓ：／／exemple.fr", "hxxp://exemple.fr", "contact@garonne.fr", "sous.domaine.exemple.io",
    "192.168.1.10/login", "192.168.1.10", "10.0.0.1:8080/admin", "192 . 168 . 1 . 10", "[::1]:8080",
])
def test_every_form_of_external_link_is_found(link: str) -> None:
    assert find_external_link(f"Bonjour, voyez {link} merci") is not None


@pytest.mark.parametrize("ok", [
    "Bonjour {{prenom}},", "Merci.Cordialement", "Le relevé est de 25 000 km. Merci !", "M. Dupont, etc.",
    "Votre véhicule.Merci", "Relevé du 12.10.2026", "{{lien_connexion}}", "{{date_dernier_relevé}}",
    "Version 1.2.3.4.5 du guide", "Le 01.02.2026 à 10.30",
])
def test_ordinary_text_is_not_a_link(ok: str) -> None:
    assert check_text(ok, "Contenu", allow_link_field=True) == []


def test_errors_name_the_field_or_link_and_the_line() -> None:
    errors = check_text("Bonjour {{prenom}}\nVotre {{voiture}}\nVoir www.exemple.fr", "Contenu", allow_link_field=True)
    assert errors[0].startswith("Contenu, ligne 2 : champ inconnu « {{voiture}} »")
    assert errors[1] == "Contenu, ligne 3 : Il n'est pas possible d'intégrer des liens externes (« www. »)."
    assert check_text("Lien {{lien_connexion}}", "Sujet", allow_link_field=False) == [
        "Sujet, ligne 1 : {{lien_connexion}} n'est possible que dans le contenu du mail."]
    assert "seuls les champs dynamiques" in check_text("{% if x %}a{% endif %}", "Contenu", allow_link_field=True)[0]


def _count(org_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(MailTemplate.organisation_id == org_id)) or 0


async def test_save_refuses_bad_templates_and_previews_good_ones(http: httpx.AsyncClient) -> None:
    org = make_org(drivers=[{"matricule": "Z1", "nom": "Zidane", "prenom": "Zoé", "email": "zoe@x.example",
                             "vehicle": True}])
    await login(http, org.manager_email)
    form = await http.get("/modeles/nouveau")
    assert "lien_connexion" in text(form) and 'data-insert="{{nom}}"' in text(form)
    token = csrf_from(form.text)
    unknown = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM",
                                                        "subject": "Relevé", "body": "Bonjour\n{{prenon}}"})
    assert unknown.status_code == 422 and "Contenu, ligne 2 : champ inconnu « {{prenon}} »" in text(unknown)
    hidden = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM",
                                                       "subject": "Voir exemple.com", "body": "Bonjour"})
    assert hidden.status_code == 422 and "Il n'est pas possible d'intégrer des liens externes" in text(hidden)
    assert _count(org.id) == 0
    body = "Bonjour {{prenom}} {{nom}}\n\nVotre véhicule {{vehicule_actuel}} : {{dernier_releve}}.\n{{lien_connexion}}"
    preview = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM", "action": "preview",
                                                        "subject": "Relevé de {{prenom}}", "body": body})
    assert preview.status_code == 200 and "Relevé de Zoé" in text(preview) and "PEUGEOT 308 AB-000-CD" in text(preview)
    assert "12 000 km" in text(preview) and "Accéder à mon Espace Conducteur" in text(preview)
    assert _count(org.id) == 0  # a preview saves nothing
    saved = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM",
                                                      "subject": "Relevé de {{prenom}}", "body": body})
    assert saved.status_code == 303 and _count(org.id) == 1
    listing = text(await http.get("/modeles"))
    assert "Relevé KM" in listing and "Relevé de {{prenom}}" in listing and "Gestionnaire Test" in listing
    shown = text(await http.get(saved.headers["location"]))
    assert "Bonjour Zoé Zidane" in shown


def test_the_demo_templates_pass_their_own_validation() -> None:
    from services.campaigns.demo_communication import TEMPLATES

    for subject, body in TEMPLATES.values():
        assert check_text(subject, "Sujet", allow_link_field=False) == []
        assert check_text(body, "Contenu", allow_link_field=True) == []


def _template_row(org_id: int, name: str) -> int | None:
    with session_scope() as session:
        return session.scalar(select(MailTemplate.id).where(MailTemplate.organisation_id == org_id,
                                                            MailTemplate.name == name))


async def test_a_template_used_by_a_workflow_step_cannot_be_deleted(http: httpx.AsyncClient) -> None:
    """Refused with the workflows and steps named, the template kept; once no step sends it, it can go."""
    from services.campaigns.models import WorkflowDefinition

    org = make_org()
    with session_scope() as session:
        used, spare = (MailTemplate(organisation_id=org.id, name=n, subject="Relevé", body="Bonjour {{prenom}}")
                       for n in ("Relevé KM", "Relance KM"))
        session.add_all([used, spare])
        session.flush()
        used_id, spare_id = used.id, spare.id
        session.add_all([
            WorkflowDefinition(organisation_id=org.id, name="WF-Relevé KM", family="compteurs", steps=[
                {"type": "mail", "name": "Mail 1", "to": "utilisateur", "cc": "", "template_id": used_id},
                {"type": "attente", "name": "Attente 5j", "days": 5},
                {"type": "mail", "name": "Relance", "to": "utilisateur", "cc": "", "template_id": spare_id}]),
            WorkflowDefinition(organisation_id=org.id, name="WF-Infos", family="informations", steps=[
                {"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "", "template_id": spare_id},
                {"type": "attente", "name": "Attente 3j", "days": 3},
                {"type": "mail", "name": "Dernière relance", "to": "responsable", "cc": "", "template_id": spare_id}]),
        ])
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/modeles")).text)

    refused = await http.post(f"/modeles/{used_id}/supprimer", data={"csrf_token": token})
    assert refused.status_code == 303 and refused.headers["location"] == "/modeles"
    page = text(await http.get("/modeles"))
    assert ('<div class="flash flash-error" role="status">Le modèle « Relevé KM » est utilisé par le workflow '
            "« WF-Relevé KM » (étape « Mail 1 ») : retirez-le du workflow avant de le supprimer.</div>") in page
    assert _template_row(org.id, "Relevé KM") == used_id

    await http.post(f"/modeles/{spare_id}/supprimer", data={"csrf_token": token})
    assert ("Le modèle « Relance KM » est utilisé par les workflows « WF-Infos » (étapes « Envoi mail », "
            "« Dernière relance ») et « WF-Relevé KM » (étape « Relance ») : "
            "retirez-le de ces workflows avant de le supprimer.") in text(await http.get("/modeles"))
    assert _template_row(org.id, "Relance KM") == spare_id

    # The manager takes the template out of the workflow (the step now sends the other one): it can be deleted.
    with session_scope() as session:
        definition = session.scalars(select(WorkflowDefinition).where(WorkflowDefinition.organisation_id == org.id,
                                                                      WorkflowDefinition.name == "WF-Relevé KM")).one()
        definition.steps = [{**definition.steps[0], "template_id": spare_id}, *definition.steps[1:]]
    deleted = await http.post(f"/modeles/{used_id}/supprimer", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "Le modèle « Relevé KM » est supprimé." in text(await http.get("/modeles"))
    assert _template_row(org.id, "Relevé KM") is None


async def test_a_template_used_by_a_campaign_cannot_be_deleted(http: httpx.AsyncClient) -> None:
    from services.campaigns.models import Campaign, DistributionList

    org = make_org()
    with session_scope() as session:
        template = MailTemplate(organisation_id=org.id, name="Info", subject="Info", body="Bonjour")
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add_all([template, dlist])
        session.flush()
        session.add(Campaign(organisation_id=org.id, name="Info mars", kind="email", list_id=dlist.id,
                             template_id=template.id))
        template_id = template.id
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/modeles")).text)
    assert (await http.post(f"/modeles/{template_id}/supprimer", data={"csrf_token": token})).status_code == 303
    assert ("Le modèle « Info » est utilisé par la campagne « Info mars » : il ne peut pas être supprimé."
            in text(await http.get("/modeles")))
    assert _template_row(org.id, "Info") == template_id


# What each of the seed's 12 dynamic fields shows for the driver below (the fine fields have their own tests).
SEED_FIELDS = {
    "nom": "Zidane", "prenom": "Zoé", "matricule": "Z1", "code_postal": "78000", "email": "zoe@x.example",
    "vehicule_actuel": "PEUGEOT 308 AB-000-CD", "futur_vehicule": "RENAULT MEGANE E-TECH", "loueur": "ARVAL",
    "duree_de_contrat": "36 mois", "dernier_releve": "12 000 km", "date_dernier_releve": "01/10/2026",
    "lien_connexion": "Accéder à mon Espace Conducteur",
}


@pytest.fixture(scope="module")
def full_driver_org() -> TestOrg:
    from services.campaigns.models import Vehicle

    org = make_org(drivers=[{"matricule": "Z1", "nom": "Zidane", "prenom": "Zoé", "email": "zoe@x.example",
                             "code_postal": "78000", "departement": "78", "vehicle": True}])
    with session_scope() as session:
        vehicle = session.scalars(select(Vehicle).where(Vehicle.organisation_id == org.id)).one()
        vehicle.futur_vehicule = "RENAULT MEGANE E-TECH"
    return org


def _mail_body(page: str) -> str:
    start = page.index('<div class="mail-body">')
    return page[start:page.index("</section>", start)]


def test_the_twelve_seed_fields_are_offered() -> None:
    from services.campaigns.fields import FIELDS

    assert list(FIELDS)[:12] == list(SEED_FIELDS)


@pytest.mark.parametrize(("field", "shown"), [*SEED_FIELDS.items(), ("date_dernier_relevé", "01/10/2026"),
                                              (" date_dernier_relevé ", "01/10/2026")])
async def test_each_dynamic_field_renders_for_the_driver(http: httpx.AsyncClient, full_driver_org: TestOrg,
                                                         field: str, shown: str) -> None:
    """The preview of a template holding only this field shows the driver's value, in the subject too."""
    org = full_driver_org
    await login(http, org.manager_email)
    form = await http.get("/modeles/nouveau")
    subject = "Objet" if field == "lien_connexion" else f"Objet {{{{{field}}}}}"
    page = await http.post("/modeles/nouveau", data={
        "csrf_token": csrf_from(form.text), "name": "Champ", "action": "preview", "driver_id": org.driver_ids[0],
        "subject": subject, "body": f"Valeur : {{{{{field}}}}} fin"})
    assert page.status_code == 200, text(page)
    body = _mail_body(text(page))
    assert shown in body and "{{" not in body
    if field != "lien_connexion":
        assert f"<strong>Sujet :</strong> Objet {shown}" in text(page)
    assert _count(org.id) == 0


def test_each_dynamic_field_renders_in_the_sent_text_part(full_driver_org: TestOrg) -> None:
    """What the mail carries (text part), the link as the driver's real Espace Conducteur address."""
    from core.settings import get_settings
    from services.campaigns.models import Driver
    from services.campaigns.service.mailtemplates import current_vehicles, render_for_driver

    body = "\n".join(f"{name}={{{{{name}}}}}" for name in SEED_FIELDS) + "\nalias={{date_dernier_relevé}}"
    with session_scope() as session:
        driver = session.get_one(Driver, full_driver_org.driver_ids[0])
        vehicle = current_vehicles(session, [driver.id]).get(driver.id)
        mail = render_for_driver("Relevé", body, driver=driver, vehicle=vehicle, settings=get_settings())
    lines = dict(line.split("=", 1) for line in mail.text.splitlines())
    for name, shown in SEED_FIELDS.items():
        if name != "lien_connexion":
            assert lines[name] == shown
    assert lines["lien_connexion"].startswith(get_settings().campaigns_url + "/espace-conducteur/")
    assert lines["alias"] == "01/10/2026"


async def test_the_accented_field_saves_and_a_bare_ip_link_is_refused(http: httpx.AsyncClient) -> None:
    org = make_org(drivers=[{"matricule": "Z1", "nom": "Zidane", "prenom": "Zoé", "vehicle": True}])
    await login(http, org.manager_email)
    form = await http.get("/modeles/nouveau")
    assert ("<code>{{date_dernier_relevé}}</code> est aussi accepté pour <code>{{date_dernier_releve}}</code>"
            in text(form))
    token = csrf_from(form.text)
    refused = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM", "subject": "Relevé",
                                                        "body": "Bonjour\nConnectez-vous sur 192.168.1.10/login"})
    assert refused.status_code == 422
    assert ("Contenu, ligne 2 : Il n'est pas possible d'intégrer des liens externes (« 192.168.1.10 »)."
            in text(refused))
    assert _count(org.id) == 0
    saved = await http.post("/modeles/nouveau", data={"csrf_token": token, "name": "Relevé KM", "subject": "Relevé",
                                                      "body": "Dernier relevé le {{date_dernier_relevé}}."})
    assert saved.status_code == 303 and _count(org.id) == 1
    assert "Dernier relevé le 01/10/2026." in text(await http.get(saved.headers["location"]))
