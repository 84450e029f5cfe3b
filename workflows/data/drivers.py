"""Driver workflows (one per driver of a Workflow campaign, or per fine): input, steps, activity arguments."""

from dataclasses import dataclass

DRIVER_WORKFLOW = "DriverWorkflow"
CLOSED = "closed"  # the signal that tells a driver workflow its read model was closed (driver's answer, manager)


@dataclass
class StepSnapshot:
    kind: str  # mail | attente
    label: str
    to: str = "utilisateur"
    cc: str = ""
    subject: str = ""
    body: str = ""
    days: int = 0


@dataclass
class DriverWorkflowInput:
    workflow_id: str
    driver_id: int
    family: str
    steps: list[StepSnapshot]
    mail_task_queue: str
    fine_id: int | None = None
    # Steps before this one were done by the launcher (the first mails go out in bulk, see
    # activities/driver_workflows.py), which also recorded this step in the read model.
    start_index: int = 0


@dataclass
class StepChange:
    workflow_id: str
    index: int
    label: str
    next_label: str


@dataclass
class DriverMail:
    workflow_id: str
    driver_id: int
    index: int
    step: StepSnapshot
    fine_id: int | None = None


@dataclass
class Ending:
    """The steps ran out: close the read model as Terminé unless an action closed it first."""

    workflow_id: str
    fine_id: int | None = None


@dataclass
class Ended:
    status: str  # the read model's final status (valide | annule | termine)
    status_label: str  # for the Temporal Web UI's RelaisStatus


@dataclass
class Closure:
    """Signal `closed`: the read model was closed (the driver answered, or a manager validated or cancelled)."""

    status: str
