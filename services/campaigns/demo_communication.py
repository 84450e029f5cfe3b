"""Demo lists, mail templates and a campaign waiting to be launched (idempotent, by name)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import User
from services.campaigns.models import Campaign, DistributionList, MailTemplate, WorkflowDefinition

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
    # Hélène Castaing is in the organisation chart (valideur) without being a driver.
    "Équipe validée par Hélène Castaing": {"valideur": "inclure", "valideurs": ["helene.castaing@garonne.example"]},
}
FPS = """Bonjour {{prenom}} {{nom}},

Une amende (FPS) n° {{numero_amende}} du {{date_amende}}, d'un montant de {{montant_amende}}, a été reçue pour \
votre véhicule {{vehicule_actuel}}.

Merci de la régler puis de déclarer la date de paiement et de joindre la preuve de paiement dans votre Espace \
Conducteur :

{{lien_connexion}}

Votre gestionnaire de parc vous remercie"""

TEMPLATES = {"Relevé KM": ("Relevé Kilométrage", RELEVE_KM),
             "Informations": ("Demande de compléter les infos conducteur", INFOS),
             "FPS": ("FPS n° {{numero_amende}} à régler", FPS)}
# name → (family, [(template or None for a wait, days)])
DEFINITIONS = {
    "WF-Relevé KM": ("compteurs", [("Relevé KM", 0), (None, 5), ("Relevé KM", 0), (None, 5)]),
    "WF-Infos permis 1 relance": ("informations", [("Informations", 0), (None, 7), ("Informations", 0), (None, 7)]),
    "WF-FPS": ("contraventions", [("FPS", 0), (None, 5), ("FPS", 0), (None, 5)]),
}


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
    existing_definitions = set(session.scalars(select(WorkflowDefinition.name).where(
        WorkflowDefinition.organisation_id == org_id)))
    for name, (family, plan) in DEFINITIONS.items():
        if name in existing_definitions:
            continue
        steps = [{"type": "mail", "name": "Envoi mail" if n == 0 else "Relance", "to": "utilisateur",
                  "cc": "" if n == 0 else "responsable", "template_id": existing_templates[template].id}
                 if template else {"type": "attente", "name": f"Attente {days}j", "days": days}
                 for n, (template, days) in enumerate(plan)]
        session.add(WorkflowDefinition(organisation_id=org_id, name=name, family=family, enabled=True, steps=steps,
                                       created_by_id=author))
    if session.scalars(select(Campaign.id).where(Campaign.organisation_id == org_id)).first() is None:
        session.add(Campaign(organisation_id=org_id, name="Relevé kilométrique Haute-Garonne", kind="email",
                             list_id=existing_lists["Haute-Garonne"].id,
                             template_id=existing_templates["Relevé KM"].id, created_by_id=author))
    # A Relevé KM Workflow campaign ready to launch: about a third of the drivers have no vehicle, and its page
    # says so before the launch (and offers to leave them out).
    workflow_campaign = "Relevé KM workflow Haute-Garonne"
    if session.scalars(select(Campaign.id).where(Campaign.organisation_id == org_id,
                                                 Campaign.name == workflow_campaign)).first() is None:
        session.flush()
        definition_id = session.scalars(select(WorkflowDefinition.id).where(
            WorkflowDefinition.organisation_id == org_id, WorkflowDefinition.name == "WF-Relevé KM")).first()
        if definition_id is not None:
            session.add(Campaign(organisation_id=org_id, name=workflow_campaign, kind="workflow",
                                 list_id=existing_lists["Haute-Garonne"].id, workflow_definition_id=definition_id,
                                 created_by_id=author))
    # An archived campaign, to be found under «Archivées» and brought back to the table («Désarchiver»).
    archived = "Infos permis Corse (archivée)"
    if session.scalars(select(Campaign.id).where(Campaign.organisation_id == org_id,
                                                 Campaign.name == archived)).first() is None:
        session.add(Campaign(organisation_id=org_id, name=archived, kind="email", list_id=existing_lists["Corse"].id,
                             template_id=existing_templates["Informations"].id, archived=True, created_by_id=author))
