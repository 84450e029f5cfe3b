"""Demo lists, mail templates and a campaign waiting to be launched (idempotent, by name)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import User
from services.campaigns.models import Campaign, DistributionList, MailTemplate

RELEVE_KM = """Bonjour {{prenom}} {{nom}}

Dans le cadre du suivi du kilométrage de votre véhicule {{vehicule_actuel}} nous vous demandons de nous indiquer \
le kilométrage compteur actuel.

Les dernières informations que nous avons enregistrées sont :
{{dernier_releve}} {{date_dernier_releve}}

Cliquez sur le lien ci-dessous pour accéder à votre Espace Conducteur et renseigner le kilométrage

{{lien_connexion}}

Votre gestionnaire de parc vous remercie"""

INFOS = """Bonjour {{prenom}} {{nom}},

Merci de compléter les informations de votre permis de conduire et votre adresse dans votre Espace Conducteur :

{{lien_connexion}}

Votre gestionnaire de parc vous remercie"""

LISTS = {
    "Haute-Garonne": {"departements": ["31"]},
    "Corse": {"departements": ["2A", "2B"]},
    "Conducteurs avec véhicule (hors valideurs)": {"immatriculation": "inclure", "valideur": "exclure"},
}
TEMPLATES = {"Relevé KM": ("Relevé Kilométrage", RELEVE_KM), "Informations": ("Demande de compléter les infos "
                                                                              "conducteur", INFOS)}


def load_communication_demo(session: Session, orgs: dict[str, int]) -> None:
    org_id = orgs["garonne"]
    author = session.scalars(select(User.id).where(User.email == "gestionnaire@garonne.example")).first()
    existing_lists = {dl.name: dl for dl in session.scalars(select(DistributionList).where(
        DistributionList.organisation_id == org_id))}
    for name, filters in LISTS.items():
        if name not in existing_lists:
            existing_lists[name] = DistributionList(organisation_id=org_id, name=name, filters=filters,
                                                    created_by_id=author)
            session.add(existing_lists[name])
    existing_templates = {t.name: t for t in session.scalars(select(MailTemplate).where(
        MailTemplate.organisation_id == org_id))}
    for name, (subject, body) in TEMPLATES.items():
        if name not in existing_templates:
            existing_templates[name] = MailTemplate(organisation_id=org_id, name=name, subject=subject, body=body,
                                                    created_by_id=author)
            session.add(existing_templates[name])
    session.flush()
    if session.scalars(select(Campaign.id).where(Campaign.organisation_id == org_id)).first() is None:
        session.add(Campaign(organisation_id=org_id, name="Relevé kilométrique Haute-Garonne", kind="email",
                             list_id=existing_lists["Haute-Garonne"].id,
                             template_id=existing_templates["Relevé KM"].id, created_by_id=author))
