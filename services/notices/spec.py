"""What the notices service brings to the platform (assembled by `wiring/`)."""

from collections.abc import Callable

from temporalio.client import Client

from activities.notices import NoticeActivities
from core.platform import ServiceSpec
from core.settings import Settings
from services.notices.demo import API_KEYS, USERS, load_notices_demo
from workflows.notices import NoticeMailRobotWorkflow, NoticeRunWorkflow, NoticeWorkflow


def activities(settings: Settings, client: Client) -> list[Callable[..., object]]:
    notices = NoticeActivities(settings)
    return [notices.begin_notice_run, notices.render_notice_page, notices.await_notice_answer,
            notices.end_notice_run, notices.confirm_notice_run, notices.apply_notice_action,
            notices.apply_send_outcome, notices.alert_notice_manager, notices.close_notice,
            notices.notice_robot_config, notices.notice_robot_state]


SPEC = ServiceSpec(
    name="notices", title="Avis d'échéance", dev_port=8002,
    workflows=[NoticeRunWorkflow, NoticeWorkflow, NoticeMailRobotWorkflow], activities=activities,
    models="services.notices.models", demo=load_notices_demo, demo_logins=USERS, demo_api_keys=API_KEYS,
)
