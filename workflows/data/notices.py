"""Notices: the types that cross the Temporal boundary between the notices service, its three workflows and their
activities, and the workflow type names.

- `NoticeWorkflow` (`avis-<org>-<entité>-<n°>`), one per notice: applies the actions channels record
  (`ACTION` signal: validate, block, resend, cancel) and the robot's outcomes (`SEND_OUTCOME`); the only writer of
  the notice's status; alerts the account manager when the notice is still E, B or KO near its due date.
- `NoticeRunWorkflow` (`avis-run-<org>-<run id>`), one per «Avis d'échéances» edition: renders the PDFs in
  parallel pages, then waits for the `RUN_ANSWER` to «Marquer les avis comme édités ?» with a timeout.
- `NoticeMailRobotWorkflow` (`avis-robot-<org>`), one per organisation, long-running (continue-as-new): the
  «Automate d'envoi», which sends the validated notices in order; `ROBOT_CONTROL` pauses, resumes or wakes it.
"""

from dataclasses import dataclass
from datetime import datetime

NOTICE = "NoticeWorkflow"
NOTICE_RUN = "NoticeRunWorkflow"
MAIL_ROBOT = "NoticeMailRobotWorkflow"

ACTION = "action"
SEND_OUTCOME = "send_outcome"
RUN_ANSWER = "answer"
ROBOT_CONTROL = "control"

# «Statut du PDF» letters (the labels are the service's: services/notices/service/statuses.py).
WAITING, VALIDATED, SENT, FAILED, BLOCKED, CANCELLED = "E", "V", "OK", "KO", "B", "A"


@dataclass
class NoticeInput:
    notice_id: int
    organisation_id: int
    mail_task_queue: str
    alert_at: datetime | None  # when to check for the account manager's alert (None: no alert)
    close_at: datetime  # the workflow ends then (the notice is history); later actions are refused by the screens


@dataclass
class NoticeAction:
    """Signal `action`: a channel recorded `pending_action` on the notice (`Notice.pending_*`) in the same
    transaction; the workflow applies it (or records why it cannot) and clears it."""

    action: str  # validate | block | resend | cancel


@dataclass
class SendOutcome:
    """Signal `send_outcome`, from the robot once a send of this notice is over."""

    send_id: int
    status: str  # OK | KO
    reply: str  # the SMTP server's reply (or the error), kept in «Observations» on KO


@dataclass
class RunInput:
    run_id: int
    organisation_id: int
    task_queue: str
    mail_task_queue: str
    page_size: int = 25  # notices rendered by one activity, at least (more when the run is large)
    parallel_pages: int = 2  # pages rendered at once (one child process each, ~100 MB: as many as the cores)
    answer_timeout_hours: int = 24  # no answer by then: as «Non» (status expired)


@dataclass
class RunAnswer:
    """Signal `answer`: the manager's answer to «Marquer les avis comme édités ?», recorded on the run first."""

    confirmed: bool


@dataclass
class RobotInput:
    organisation_id: int
    mail_task_queue: str
    task_queue: str
    batch_limit: int = 200  # notices one activity sends at most (then the workflow looks at its signals)


@dataclass
class RobotControl:
    """Signal `control`: pause | resume | wake (settings changed, notices validated)."""

    command: str


@dataclass
class RunPage:
    run_id: int
    page: int
    page_size: int


@dataclass
class RenderedPage:
    rendered: int
    failed: list[str]  # "n°<numéro> : <why>" of the notices that could not be rendered


@dataclass
class Applied:
    """What a notice's status is after an activity applied an action or an outcome (with its «Statut du PDF»
    label for the search attribute)."""

    status: str
    label: str


@dataclass
class NoticeOutcome:
    notice_id: int
    outcome: SendOutcome


@dataclass
class RobotConfig:
    paused: bool
    idle_ms: int
    error_wait_ms: int
    pause_ms: int = 800  # between two mails (0: the robot claims a few notices ahead)


@dataclass
class RobotBatch:
    """What one `send_validated_notices` did, and why it stopped: empty | error | paused | limit."""

    sent: int
    failed: int
    stopped: str
    error: str | None = None


@dataclass
class RunEnd:
    """A run ends without «Oui»: declined («Non»), expired (no answer in time) or failed (PDFs that would not
    render, listed in `reasons`)."""

    run_id: int
    status: str
    reasons: list[str]


@dataclass
class RobotRun:
    organisation_id: int
    limit: int  # notices to send at most before the workflow looks at its signals again
    task_queue: str  # where the notices' workflows run (the outcomes are signalled there)


@dataclass
class NoticeRef:
    """A notice, and the task queues its workflow and the robot run on (what an activity queues goes there)."""

    notice_id: int
    task_queue: str
    mail_task_queue: str


@dataclass
class RobotState:
    organisation_id: int
    state: str  # running | paused | error_wait | idle
    error: str | None = None
