"""The one place that lists the services of this deployment and assembles the platform from their declarations:
the worker (`python -m wiring worker`), the dev stack (`python -m wiring devstack`, what `make run` calls), the demo
data (`python -m wiring demo`) and the models Alembic migrates. `core/` never imports a service; this does."""

from collections.abc import Callable

from temporalio.client import Client

from activities.mail import MailActivities
from activities.mail_batch import MailBatchActivities
from activities.notices import NoticeMailActivities
from core.platform import ServiceSpec
from core.settings import Settings
from services.campaigns.spec import SPEC as CAMPAIGNS
from services.interventions.spec import SPEC as INTERVENTIONS
from services.notices.spec import SPEC as NOTICES
from services.removals.spec import SPEC as REMOVALS
from workflows.single_mail import SingleMailWorkflow

SERVICES: tuple[ServiceSpec, ...] = (CAMPAIGNS, NOTICES, REMOVALS, INTERVENTIONS)
# Workflows of the platform itself (core starts them by type name): the one-off mail of a password reset.
PLATFORM_WORKFLOWS: tuple[type, ...] = (SingleMailWorkflow,)


def mail_activities(settings: Settings, client: Client) -> list[Callable[..., object]]:
    """Every service's mails leave through these (outbox rows, `core.outbox`), on the mail task queue."""
    return [MailActivities(settings).send_mail, MailBatchActivities(settings).send_mail_batch,
            NoticeMailActivities(settings).send_validated_notices]
