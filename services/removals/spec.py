"""What the removals service brings to the platform (assembled by `wiring/`)."""

from collections.abc import Callable

from temporalio.client import Client

from activities.removals import RemovalActivities
from core.platform import ServiceSpec
from core.settings import Settings
from services.removals.demo import API_KEYS, USERS, load_removals_demo
from workflows.removal import RemovalRequestWorkflow, RemovalWorkflow


def activities(settings: Settings, client: Client) -> list[Callable[..., object]]:
    removals = RemovalActivities(settings, client)
    return [removals.notify_removal_deposers, removals.record_removal_notified, removals.notify_removal_requester,
            removals.start_removal_workflows, removals.queue_removal_mails,
            removals.close_removal_subscription, removals.remind_removal_deposer, removals.alert_removal_overdue]


SPEC = ServiceSpec(
    name="removals", title="Déposes de boîtiers", dev_port=8003,
    workflows=[RemovalRequestWorkflow, RemovalWorkflow], activities=activities, models="services.removals.models",
    demo=load_removals_demo, demo_logins=USERS, demo_api_keys=API_KEYS,
)
