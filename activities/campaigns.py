"""Campaigns activities: DB and rendering work for the campaigns workflows."""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core import outbox
from core.db import session_scope
from core.maillayout import button_html
from core.rendering import RenderError
from core.settings import Settings
from services.campaigns.links import ack_url
from services.campaigns.models import Driver, TestMail
from services.campaigns.service.mailtemplates import current_vehicles, render_for_driver


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
            vehicle = current_vehicles(session, [driver.id]).get(driver.id)
            try:
                mail = render_for_driver(test_mail.subject, test_mail.body, driver=driver, vehicle=vehicle,
                                         settings=self.settings)
            except RenderError as exc:
                raise ApplicationError(str(exc), non_retryable=True) from exc
            link = ack_url(self.settings, test_mail.id)
            html = mail.document(after_html=f"<p>{button_html(link, 'Confirmer la réception')}</p>")
            text = mail.text + f"\n\nConfirmer la réception : {link}\n"
            outbox_id = outbox.enqueue(
                session, settings=self.settings, organisation_id=test_mail.organisation_id,
                key=f"test-mail-{test_mail.id}", to=[driver.email], subject=mail.subject, text=text,
                html=html,
            )
            test_mail.outbox_id = outbox_id
            return outbox_id
