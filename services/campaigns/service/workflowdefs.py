"""Workflows (definitions): ordered Mail / Attente steps edited server-side, validated, saved as JSON."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped, utcnow
from core.models import User
from services.campaigns.models import Campaign, MailTemplate, WorkflowDefinition

FAMILIES = {"compteurs": "Compteurs", "informations": "Informations", "contraventions": "Contraventions",
            "autres": "Autres"}
FAMILY_DESCRIPTIONS = {
    "compteurs": "concerne les relevés de compteur kilométrique",
    "informations": "concerne les infos obligatoires de la fiche utilisateur, adresse, permis",
    "contraventions": "concerne la gestion des FPS",
    "autres": "toute autre demande faite aux utilisateurs",
}
STEP_TYPES = {"mail": "Mail", "attente": "Attente"}
STEP_TYPE_DESCRIPTIONS = {"mail": "envoi d'un mail",
                          "attente": "délai d'attente avant l'étape suivante : saisir un nb de jours"}
RECIPIENTS = {"utilisateur": "@utilisateur", "responsable": "@responsable"}
CC = {"": "Aucun", "responsable": "@responsable", "utilisateur": "@utilisateur"}
MAX_NAME = 200
MAX_STEPS = 30
MAX_DAYS = 365
_STEP_FIELD = re.compile(r"steps-([0-9]{1,3})-(type|name|to|cc|template_id|days)")
_WHOLE = re.compile(r"[+-]?[0-9]{1,9}")
_ID = re.compile(r"[0-9]{1,18}")


def _whole(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if _WHOLE.fullmatch(raw) else None


@dataclass
class StepForm:
    """One step as the form shows it: numbers kept as typed, so a wrong value is shown back with its error."""

    type: str = "mail"
    name: str = ""
    to: str = "utilisateur"
    cc: str = ""
    template_id: str = ""
    days: str = ""

    @classmethod
    def from_step(cls, step: Mapping[str, Any]) -> "StepForm":
        return cls(str(step.get("type", "mail")), str(step.get("name") or ""), str(step.get("to") or "utilisateur"),
                   str(step.get("cc") or ""), str(step.get("template_id") or ""), str(step.get("days") or ""))


@dataclass
class WorkflowForm:
    name: str = ""
    family: str = ""
    enabled: bool = True
    steps: list[StepForm] = field(default_factory=lambda: [StepForm()])

    @classmethod
    def from_definition(cls, definition: WorkflowDefinition) -> "WorkflowForm":
        return cls(definition.name, definition.family, definition.enabled,
                   [StepForm.from_step(step) for step in definition.steps or []])

    def default_names(self) -> list[str]:
        """The name each step gets when left empty: "Envoi mail", then "Relance", "Attente Nj"."""
        names, mails = [], 0
        for step in self.steps:
            if step.type == "attente":
                days = _whole(step.days)
                names.append(f"Attente {days}j" if days is not None else "Attente")
            else:
                names.append("Envoi mail" if mails == 0 else "Relance")
                mails += 1
        return names

    def steps_json(self) -> list[dict[str, Any]]:
        """The steps as stored (the form must be valid)."""
        stored: list[dict[str, Any]] = []
        for step, default in zip(self.steps, self.default_names(), strict=True):
            name = step.name.strip() or default
            if step.type == "attente":
                stored.append({"type": "attente", "name": name, "days": _whole(step.days)})
            else:
                stored.append({"type": "mail", "name": name, "to": step.to, "cc": step.cc,
                               "template_id": int(step.template_id)})
        return stored


def parse_form(fields: Mapping[str, str]) -> WorkflowForm:
    """The posted form: name, family, enabled (checkbox) and the indexed fields steps-N-type, steps-N-name..."""
    indexed: dict[int, dict[str, str]] = {}
    for key, value in fields.items():
        if match := _STEP_FIELD.fullmatch(key):
            indexed.setdefault(int(match.group(1)), {})[match.group(2)] = value
    steps = [StepForm(**indexed[i]) for i in sorted(indexed)]
    return WorkflowForm(fields.get("name", ""), fields.get("family", ""), bool(fields.get("enabled")), steps)


def apply_action(form: WorkflowForm, action: str) -> bool:
    """Edit the step list for "add", "insert-N" (a new step after step N, the seed's +) or "delete-N".

    False when the action is unknown or names a step that does not exist.
    """
    if action == "add":
        form.steps.append(StepForm())
        return True
    verb, _, number = action.partition("-")
    index = int(number) if number.isascii() and number.isdigit() else -1
    if not 0 <= index < len(form.steps):
        return False
    if verb == "insert":
        form.steps.insert(index + 1, StepForm())
    elif verb == "delete":
        del form.steps[index]
    else:
        return False
    return True


def _step_errors(step: StepForm, prefix: str, template_ids: set[int]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if len(step.name.strip()) > MAX_NAME:
        errors[f"{prefix}name"] = f"Le nom de l'étape ne doit pas dépasser {MAX_NAME} caractères."
    if step.type == "attente":
        days = _whole(step.days)
        if days is None:
            errors[f"{prefix}days"] = "Le nombre de jours doit être un nombre entier."
        elif days < 1:
            errors[f"{prefix}days"] = "Une attente dure au moins un jour."
        elif days > MAX_DAYS:
            errors[f"{prefix}days"] = f"Une attente dure au plus {MAX_DAYS} jours."
    elif step.type == "mail":
        if step.to not in RECIPIENTS:
            errors[f"{prefix}to"] = "Choisissez le destinataire : @utilisateur ou @responsable."
        if step.cc not in CC:
            errors[f"{prefix}cc"] = "Choisissez la copie : aucune, @responsable ou @utilisateur."
        if not step.template_id.strip():
            errors[f"{prefix}template_id"] = "Choisissez le modèle d'email à envoyer."
        elif not _ID.fullmatch(step.template_id.strip()) or int(step.template_id) not in template_ids:
            errors[f"{prefix}template_id"] = ("Ce modèle d'email n'existe pas (ou plus) dans votre organisation : "
                                              "choisissez-en un autre.")
    else:
        errors[f"{prefix}type"] = "Choisissez le type d'étape : Mail ou Attente."
    return errors


def validate(session: Session, *, organisation_id: int, form: WorkflowForm,
             definition_id: int | None = None) -> dict[str, str]:
    """Errors by field name (a step's as "steps-N-field", the whole list's as "steps"); empty when it can be saved."""
    errors: dict[str, str] = {}
    name = form.name.strip()
    if not name:
        errors["name"] = "Le nom du workflow est obligatoire."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Le nom du workflow ne doit pas dépasser {MAX_NAME} caractères."
    else:
        same_name = scoped(WorkflowDefinition, organisation_id).where(func.lower(WorkflowDefinition.name)
                                                                     == name.lower())
        same = session.scalars(same_name).first()
        if same is not None and same.id != definition_id:
            errors["name"] = "Un workflow porte déjà ce nom."
    if form.family not in FAMILIES:
        errors["family"] = "Choisissez la famille du workflow."
    elif form.family == "contraventions" and definition_id is not None and (campaign := session.scalars(
            scoped(Campaign, organisation_id).where(Campaign.workflow_definition_id == definition_id)
            .order_by(Campaign.id)).first()):
        errors["family"] = (f"Ce workflow est utilisé par la campagne « {campaign.name} » : il ne peut pas passer "
                            "dans la famille Contraventions (réservée au suivi des amendes).")
    if not form.steps:
        errors["steps"] = "Ajoutez au moins une étape."
    elif len(form.steps) > MAX_STEPS:
        errors["steps"] = f"Un workflow compte au plus {MAX_STEPS} étapes."
    elif form.steps[0].type != "mail":
        errors["steps"] = "La première étape doit être un Mail."
    wanted = {int(s.template_id) for s in form.steps if s.type == "mail" and _ID.fullmatch(s.template_id.strip())}
    # FOR SHARE: a template cannot be deleted between this check and the commit of the definition that names it
    # (`mailtemplates.delete` locks the template FOR UPDATE, then looks for the workflows using it).
    known = set(session.scalars(select(MailTemplate.id).where(MailTemplate.organisation_id == organisation_id,
                                                              MailTemplate.id.in_(wanted))
                                .with_for_update(read=True))) if wanted else set()
    for index, step in enumerate(form.steps[:MAX_STEPS]):
        errors.update(_step_errors(step, f"steps-{index}-", known))
    return errors


def save(session: Session, *, user: User, form: WorkflowForm,
         definition: WorkflowDefinition | None = None) -> WorkflowDefinition:
    """Create or update (the caller validated first)."""
    if definition is None:
        definition = WorkflowDefinition(organisation_id=user.organisation_id, created_by_id=user.id)
        session.add(definition)
    else:
        definition.updated_by_id = user.id
        definition.updated_at = utcnow()
    definition.name, definition.family, definition.enabled = form.name.strip(), form.family, form.enabled
    definition.steps = form.steps_json()
    session.flush()
    return definition


def list_definitions(session: Session, *, organisation_id: int) -> list[WorkflowDefinition]:
    return list(session.scalars(scoped(WorkflowDefinition, organisation_id).order_by(WorkflowDefinition.name)))


def get_definition(session: Session, *, organisation_id: int, definition_id: int) -> WorkflowDefinition | None:
    return get_scoped(session, WorkflowDefinition, definition_id, organisation_id)


def delete(session: Session, *, definition: WorkflowDefinition) -> str | None:
    """Delete the definition, unless a campaign uses it: then the refusal message, and nothing changes."""
    stmt = scoped(Campaign, definition.organisation_id).where(Campaign.workflow_definition_id == definition.id)
    if campaign := session.scalars(stmt.order_by(Campaign.id)).first():
        return f"Ce workflow est utilisé par la campagne « {campaign.name} » : il ne peut pas être supprimé."
    session.delete(definition)
    session.flush()
    return None


def enabled_contraventions_definition(session: Session, *, organisation_id: int) -> WorkflowDefinition | None:
    """The activated Contraventions workflow (the most recently updated if several) that follows fines up."""
    stmt = (scoped(WorkflowDefinition, organisation_id)
            .where(WorkflowDefinition.family == "contraventions", WorkflowDefinition.enabled.is_(True))
            .order_by(WorkflowDefinition.updated_at.desc(), WorkflowDefinition.id.desc()))
    return session.scalars(stmt).first()
