"""Who hears of a request: its alert recipients (the tracking address and others, edited on the request's page),
and the operator's logistics contact that the «Signaler une dépose» warning gives (a setting of the installation).
"""

import re

from core.settings import Settings
from services.removals.models import RemovalRequest
from services.removals.service.upload import valid_email

MAX_OTHERS = 10
SEPARATORS = re.compile(r"[\s,;]+")
# `make run` shows the warning with a contact even when REMOVAL_LOGISTICS_CONTACT is not set.
DEMO_LOGISTICS_CONTACT = "logistique@relais.local (contact de démonstration)"


class RecipientsRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_others(text: str) -> list[str]:
    """The other recipients typed one per line or separated by commas or semicolons; RecipientsRefused if one
    is not an address or there are too many (nothing is changed then)."""
    addresses = list(dict.fromkeys(a for a in SEPARATORS.split(text.strip()) if a))
    if bad := [a for a in addresses if not valid_email(a)]:
        raise RecipientsRefused("alert_emails", "Adresse e-mail invalide : " + ", ".join(f"« {a} »" for a in bad)
                                + ".")
    if len(addresses) > MAX_OTHERS:
        raise RecipientsRefused("alert_emails", f"{MAX_OTHERS} autres destinataires au plus ({len(addresses)} "
                                                "saisis).")
    return addresses


def set_recipients(request: RemovalRequest, *, tracking_email: str, others: str) -> None:
    """The request's «email de suivi» and other alert recipients; RecipientsRefused says which field is wrong."""
    tracking_email = tracking_email.strip()
    if not valid_email(tracking_email):
        raise RecipientsRefused("tracking_email", "Indiquez une adresse e-mail de suivi valide.")
    addresses = [a for a in parse_others(others) if a.lower() != tracking_email.lower()]
    request.tracking_email, request.alert_emails = tracking_email, addresses


def logistics_contact(settings: Settings) -> str:
    """The operator's logistics contact for the «Signaler une dépose» warning ("" when none is configured)."""
    contact = settings.removal_logistics_contact.strip()
    if not contact and settings.environment == "dev":
        return DEMO_LOGISTICS_CONTACT
    return contact
