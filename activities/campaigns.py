"""Campaigns activities: DB and rendering work for the campaigns workflows."""

from markupsafe import escape
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core import outbox
from core.db import session_scope
from core.rendering import RenderError, render, text_to_html
from core.settings import Settings
from services.campaigns.fields import driver_context
from services.campaigns.links import ack_url
from services.campaigns.models import Driver, TestMail


class CampaignActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="prepare_test_mail")
    def prepare_test_mail(self, test_mail_id: int) -> int:
        """Render the test mail for its driver and put it in the outbox; returns the outbox id."""
        with session_scope() as session:
            test_mail = session.get(TestMail, test_mail_id)
            if test_mail is None:
                raise ApplicationError(f"Envoi de test {test_mail_id} introuvable", non_retryable=True)
            driver = session.get(Driver, test_mail.driver_id)
            assert driver is not None and driver.organisation_id == test_mail.organisation_id
            if not driver.email:
                raise ApplicationError("Adresse mail manquante dans les infos du conducteur", non_retryable=True)
            context = driver_context(driver, self.settings)
            try:
                subject = render(test_mail.subject, context)
                text = render(test_mail.body, context)
            except RenderError as exc:
                raise ApplicationError(str(exc), non_retryable=True) from exc
            link = ack_url(self.settings, test_mail.id)
            html = text_to_html(text) + f'<p><a href="{escape(link)}">Confirmer la réception</a></p>'
            text += f"\n\nConfirmer la réception : {link}\n"
            outbox_id = outbox.enqueue(
                session, settings=self.settings, organisation_id=test_mail.organisation_id,
                key=f"test-mail-{test_mail.id}", to=[driver.email], subject=subject, text=text,
                html=html,
            )
            test_mail.outbox_id = outbox_id
            return outbox_id
