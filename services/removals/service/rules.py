"""The rules of a removal mandate: its statuses, which action leads where, and the French messages of a refusal.

Every channel (mail link, extranet, requester UI, partner API) decides with these, against the read model
(`process.record_action`); the workflow only follows what was recorded (`workflows.data.removals`).
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

STATUS_LABELS = {"nouvelle": "Nouvelle", "prevenu": "Prévenu", "acceptee": "Acceptée", "refusee": "Refusée",
                 "effectuee": "Effectuée", "annulee": "Annulée"}
# action → (statuses it may start from, status it leads to): the one rule set for links, extranet, API and UI.
TRANSITIONS = {
    "accept": (frozenset({"prevenu"}), "acceptee"),
    "refuse": (frozenset({"prevenu", "acceptee"}), "refusee"),
    "confirm": (frozenset({"prevenu", "acceptee"}), "effectuee"),
    # Nouvelle too: a vehicle whose deposer's mail was refused by the server would stay blocked otherwise.
    "cancel": (frozenset({"nouvelle", "prevenu", "acceptee"}), "annulee"),
}
ACTION_VERBS = {"accept": "acceptée", "refuse": "refusée", "confirm": "signalée comme effectuée",
                "cancel": "annulée"}
BOX_DIGITS = re.compile(r"\d{7}")


def allowed_actions(status: str) -> list[str]:
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]


def refusal(action: str, status: str) -> str | None:
    """Why `action` is impossible from `status` (French, for the person who tried), or None."""
    if status in TRANSITIONS[action][0]:
        return None
    if status == "nouvelle":
        return ("Action refusée : la demande de dépose n'a pas encore été transmise au mandataire "
                "(statut « Nouvelle »).")
    if status == TRANSITIONS[action][1]:
        return f"Action refusée : cette demande de dépose est déjà « {STATUS_LABELS[status]} »."
    return (f"Action refusée : la demande de dépose est « {STATUS_LABELS[status]} », elle ne peut plus être "
            f"{ACTION_VERBS[action]}.")


@dataclass
class MandateAction:
    """Who acts and, for a refusal or a removal, the form's fields."""

    by: str
    reason: str = ""
    removal_date: datetime | None = None
    box_digits: str = ""
    technician: str = ""


def form_problem(action: str, payload: MandateAction, now: datetime) -> str | None:
    """The first missing or wrong field of a refusal or a removal report, or None."""
    if action == "refuse" and not payload.reason.strip():
        return "Le motif du refus est obligatoire."
    if action == "confirm":
        if payload.removal_date is None:
            return "La date de dépose est obligatoire."
        if payload.removal_date.tzinfo is None or payload.removal_date > now + timedelta(minutes=10):
            return "La date de dépose ne peut pas être dans le futur."
        if not BOX_DIGITS.fullmatch(payload.box_digits.strip()):
            return "Indiquez les 7 derniers chiffres du numéro de boîtier (7 chiffres)."
        if not payload.technician.strip():
            return "Le nom du technicien est obligatoire."
    return None
