"""Action links of the campaigns service (public: the signed token is the credential)."""

from pathlib import Path

from fastapi import APIRouter
from sqlalchemy.orm import Session

from core.db import utcnow
from core.linkpages import LinkAction, add_link_routes
from core.links import ActionLink, LinkInvalid, make_url
from core.settings import Settings
from core.ui import make_templates
from services.campaigns.models import Driver, TestMail

ACK_PATH = "/liens/accuse-reception"
ACK_PURPOSE = "campaigns.test_mail.ack"
SPACE_PATH = "/espace-conducteur"
SPACE_PURPOSE = "campaigns.driver_space"


def ack_url(settings: Settings, test_mail_id: int) -> str:
    return make_url(settings.campaigns_url, ACK_PATH, ACK_PURPOSE, f"test-mail-{test_mail_id}")


def driver_space_url(settings: Settings, driver_id: int) -> str:
    """{{lien_connexion}}: reusable until it expires (the space is visited, not consumed)."""
    return make_url(settings.campaigns_url, SPACE_PATH, SPACE_PURPOSE, f"driver-{driver_id}",
                    max_age_seconds=settings.driver_space_link_days * 86400)


def _test_mail(session: Session, link: ActionLink) -> TestMail:
    test_mail_id = int(link.subject.removeprefix("test-mail-"))
    test_mail = session.get(TestMail, test_mail_id)
    if test_mail is None:
        raise LinkInvalid
    return test_mail


def _describe(session: Session, link: ActionLink) -> str:
    test_mail = _test_mail(session, link)
    driver = session.get(Driver, test_mail.driver_id)
    name = f"{driver.prenom} {driver.nom}" if driver else ""
    return f"{name}, confirmez-vous avoir bien reçu l'e-mail « {test_mail.subject} » ?"


def _act(session: Session, link: ActionLink) -> str:
    _test_mail(session, link).acknowledged_at = utcnow()
    return "Merci, la réception est confirmée."


ACK = LinkAction(purpose=ACK_PURPOSE, heading="Accusé de réception", action_label="Confirmer la réception",
                 describe=_describe, act=_act)

templates = make_templates(Path(__file__).parent)
router = APIRouter()
add_link_routes(router, ACK_PATH, ACK, templates)
