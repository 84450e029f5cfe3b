"""Modèles de mail: only known fields, never an external link, a preview for a chosen driver."""

import httpx
import pytest
from sqlalchemy import func, select

from core.db import session_scope
from services.campaigns.models import MailTemplate
from services.campaigns.service.mailtemplates import check_text, find_external_link
from tests.support.factories import make_org
from tests.support.web import csrf_from, login, text


@pytest.mark.parametrize("link", [
    "http://exemple.fr", "https://www.exemple.com/page", "HTTPS://EXEMPLE.COM", "www.exemple.fr",
    "WWW.Exemple.org", "javascript:alert(1)", "JavaScript :alert(1)", "exemple.com", "mon-site.fr/contact",
    "data:text/html;base64,PHNjcmlwdD4=", "mailto:chef@exemple.fr", "ftp://fichiers.exemple.net",
    "ｈｔｔｐｓ：／／exemple.fr", "hxxp://exemple.fr", "contact@garonne.fr", "sous.domaine.exemple.io",
])
def test_every_form_of_external_link_is_found(link: str) -> None:
    assert find_external_link(f"Bonjour, voyez {link} merci") is not None


@pytest.mark.parametrize("ok", [
    "Bonjour {{prenom}},", "Merci.Cordialement", "Le relevé est de 25 000 km. Merci !", "M. Dupont, etc.",
    "Votre véhicule.Merci", "Relevé du 12.10.2026", "{{lien_connexion}}",
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
