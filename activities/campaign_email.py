"""Activities of the e-mail campaign workflow (and the launcher's freeze and finish): thin adapters over
`services.campaigns.service.emailsend`."""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core import outbox
from core.db import session_scope
from core.settings import Settings
from services.campaigns.service import emailsend
from workflows.data.campaigns import Finished, PrepareBatch, PreparedBatch, RecordBatch


class CampaignEmailActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="freeze_campaign_recipients")
    def freeze_campaign_recipients(self, campaign_id: int) -> int:
        """Resolve the list once into the campaign's recipients (idempotent)."""
        try:
            with session_scope() as session:
                return emailsend.freeze_recipients(session, campaign_id=campaign_id)
        except emailsend.CampaignGone as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc

    @activity.defn(name="prepare_campaign_batch")
    def prepare_campaign_batch(self, inp: PrepareBatch) -> PreparedBatch:
        """Render the next recipients into the outbox."""
        try:
            with session_scope() as session:
                return emailsend.prepare_batch(session, self.settings, inp)
        except outbox.HeaderInjection as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc

    @activity.defn(name="record_campaign_batch")
    def record_campaign_batch(self, inp: RecordBatch) -> None:
        with session_scope() as session:
            emailsend.record_batch(session, inp)

    @activity.defn(name="finish_campaign")
    def finish_campaign(self, campaign_id: int) -> Finished:
        with session_scope() as session:
            return Finished(emailsend.finish(session, campaign_id=campaign_id))
