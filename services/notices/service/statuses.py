"""The «Statut du PDF» of a notice: the seed's letters, labels and colours (screens, exports, Temporal Web UI)."""

from workflows.data.notices import BLOCKED, CANCELLED, FAILED, SENT, VALIDATED, WAITING

LABELS = {
    WAITING: "En attente de validation (E)",
    VALIDATED: "Validé, prêt à envoyer (V)",
    SENT: "Envoyé avec succès (OK)",
    FAILED: "Erreur lors de l'envoi (KO)",
    BLOCKED: "Bloqué par l'utilisateur (B)",
    CANCELLED: "Annulé avec sa quittance (A)",  # beyond the seed: the receipt was cancelled, the notice with it
}
# Badge colours of the screens (classes of core/static), one per status.
COLOURS = {WAITING: "warning", VALIDATED: "info", SENT: "success", FAILED: "danger", BLOCKED: "muted",
           CANCELLED: "muted"}
# A live notice holds its receipt: no other run makes one for it (cancelled ones free it).
LIVE = frozenset({WAITING, VALIDATED, SENT, FAILED, BLOCKED})
