"""What the campaigns service brings to the platform (assembled by `wiring/`)."""

from collections.abc import Callable

from temporalio.client import Client

from activities.campaign_email import CampaignEmailActivities
from activities.campaigns import CampaignActivities
from activities.driver_workflows import DriverWorkflowActivities
from core.platform import ServiceSpec
from core.settings import Settings
from services.campaigns.demo_accounts import API_KEYS, USERS, load_campaigns_demo
from workflows.campaign_email import EmailCampaignWorkflow
from workflows.campaign_workflow import WorkflowCampaignLauncher
from workflows.driver import DriverWorkflow
from workflows.testmail import TestMailWorkflow


def activities(settings: Settings, client: Client) -> list[Callable[..., object]]:
    test_mails, emails = CampaignActivities(settings), CampaignEmailActivities(settings)
    drivers = DriverWorkflowActivities(settings, client)
    return [test_mails.prepare_test_mail, emails.freeze_campaign_recipients, emails.prepare_campaign_batch,
            emails.record_campaign_batch, emails.finish_campaign, drivers.launch_driver_workflows,
            drivers.record_launched_page, drivers.record_driver_step, drivers.prepare_driver_mail,
            drivers.finish_driver_workflow]


SPEC = ServiceSpec(
    name="campaigns", title="Campagnes", dev_port=8001,
    workflows=[TestMailWorkflow, EmailCampaignWorkflow, WorkflowCampaignLauncher, DriverWorkflow],
    activities=activities, models="services.campaigns.models",
    demo=load_campaigns_demo, demo_logins=USERS, demo_api_keys=API_KEYS,
)
