"""Test mails, e-mail campaigns and the Workflow-campaign launcher: inputs, activity arguments, type names."""

from dataclasses import dataclass, field

TEST_MAIL = "TestMailWorkflow"
EMAIL_CAMPAIGN = "EmailCampaignWorkflow"
WORKFLOW_CAMPAIGN = "WorkflowCampaignLauncher"


@dataclass
class TestMailInput:
    __test__ = False
    test_mail_id: int
    mail_task_queue: str


@dataclass
class EmailCampaignInput:
    campaign_id: int
    mail_task_queue: str
    batch_size: int = 500


@dataclass
class PrepareBatch:
    campaign_id: int
    after_id: int
    limit: int


@dataclass
class PreparedBatch:
    first_id: int = 0
    last_id: int = 0
    count: int = 0
    outbox_ids: list[int] = field(default_factory=list)


@dataclass
class RecordBatch:
    campaign_id: int
    first_id: int
    last_id: int


@dataclass
class Finished:
    """What the campaign's last activity recorded: the status to show in the Temporal Web UI."""

    status_label: str


@dataclass
class WorkflowCampaignInput:
    campaign_id: int
    task_queue: str
    mail_task_queue: str
    page_size: int = 500


@dataclass
class LaunchPage:
    campaign_id: int
    after_id: int
    limit: int
    task_queue: str
    mail_task_queue: str


@dataclass
class LaunchedPage:
    first_id: int = 0
    last_id: int = 0
    count: int = 0
    started: int = 0
    outbox_ids: list[int] = field(default_factory=list)  # the first mails, sent in bulk by the launcher
