"""The deposer's action links: which token purpose each action has, and the URLs the mails carry."""

from core.links import make_url
from core.settings import Settings

# path segment → (workflow action, token purpose, page heading, button)
KINDS = {
    "accepter": ("accept", "removals.accept", "Accepter la demande de dépose", "Accepter la demande"),
    "refuser": ("refuse", "removals.refuse", "Refuser la demande de dépose", "Refuser la demande"),
    "signaler": ("confirm", "removals.confirm", "Signaler une dépose", "OK"),
}
ACCEPT_ALL_PURPOSE = "removals.accept_all"


def mandate_urls(settings: Settings, mandate_id: int) -> tuple[str, str, str]:
    """Accepter, Refuser, Signaler la dépose: three tokens, each good for its own action on this vehicle only."""
    accept, refuse, confirm = (make_url(settings.removals_url, f"/liens/{kind}", purpose, f"mandate-{mandate_id}")
                               for kind, (_, purpose, _, _) in KINDS.items())
    return accept, refuse, confirm


def accept_all_url(settings: Settings, request_id: int, deposer_id: int) -> str:
    return make_url(settings.removals_url, "/liens/accepter-tout", ACCEPT_ALL_PURPOSE,
                    f"request-{request_id}-deposer-{deposer_id}")
