"""One durable workflow per driver (or per fine): Mail and Attente steps, closed by the driver's action,
by a manager (validate / cancel updates), or when the steps run out.

The steps, templates included, are a snapshot taken at start: editing the definition later never
changes a running workflow.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import send_mail

with workflow.unsafe.imports_passed_through():
    from core.temporal import SA_STATUS

STATUS_LABELS = {"en_cours": "En cours", "valide": "Validé", "annule": "Annulé", "termine": "Terminé"}
DB_STEP = {"start_to_close_timeout": timedelta(minutes=2),
           "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))}


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
    workflow_id: str
    status: str
    reason: str
    fine_id: int | None = None


@dataclass
class DriverAction:
    """What the driver did in the Espace Conducteur (a signal: accepted even with no worker running)."""

    what: str = ""


@dataclass
class ManagerAction:
    by: str


@dataclass
class _State:
    outcome: str | None = None
    reason: str = ""
    finished: bool = False
    step: str = field(default="")


# Unsandboxed: a campaign keeps thousands of these open, and the sandbox costs ~10 ms of worker CPU per
# workflow task. The code below only uses the workflow API (no I/O, no clock), and a replay test
# (tests/test_driver_workflow.py) checks it stays deterministic.
@workflow.defn(sandboxed=False)
class DriverWorkflow:
    def __init__(self) -> None:
        self.state = _State()

    @workflow.run
    async def run(self, inp: DriverWorkflowInput) -> str:
        for index, step in enumerate(inp.steps):
            if index < inp.start_index:
                continue
            if self.state.outcome:
                break
            following = inp.steps[index + 1].label if index + 1 < len(inp.steps) else ""
            self.state.step = step.label
            if index > inp.start_index or inp.start_index == 0:
                await workflow.execute_activity("record_driver_step", StepChange(inp.workflow_id, index, step.label,
                                                                                 following),
                                                **DB_STEP)  # type: ignore[call-overload]
            if step.kind == "mail":
                outbox_id = await workflow.execute_activity(
                    "prepare_driver_mail", DriverMail(inp.workflow_id, inp.driver_id, index, step, inp.fine_id),
                    result_type=int, **DB_STEP)  # type: ignore[call-overload]
                if outbox_id:
                    await send_mail(outbox_id, inp.mail_task_queue)
            else:
                # A durable timer that the driver's or a manager's action cuts short.
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self.state.outcome is not None,
                                                  timeout=timedelta(days=step.days))
        status = self.state.outcome or "termine"
        reason = self.state.reason or "Étapes terminées sans action du conducteur"
        await workflow.execute_activity("finish_driver_workflow", Ending(inp.workflow_id, status, reason, inp.fine_id),
                                        **DB_STEP)  # type: ignore[call-overload]
        workflow.upsert_search_attributes([SA_STATUS.value_set(STATUS_LABELS[status])])
        self.state.finished = True
        return status

    @workflow.signal
    def driver_completed(self, action: DriverAction) -> None:
        if self.state.outcome is None:
            self.state.outcome, self.state.reason = "valide", "Action réalisée par le conducteur"

    @workflow.update
    async def validate(self, action: ManagerAction) -> str:
        self.state.outcome, self.state.reason = "valide", f"Validé par {action.by}"
        await workflow.wait_condition(lambda: self.state.finished)  # answer once the read model says so
        return STATUS_LABELS["valide"]

    @validate.validator
    def _check_validate(self, action: ManagerAction) -> None:
        self._refuse_if_closed()

    @workflow.update
    async def cancel(self, action: ManagerAction) -> str:
        self.state.outcome, self.state.reason = "annule", f"Annulé par {action.by}"
        await workflow.wait_condition(lambda: self.state.finished)
        return STATUS_LABELS["annule"]

    @cancel.validator
    def _check_cancel(self, action: ManagerAction) -> None:
        self._refuse_if_closed()

    @workflow.query
    def current_step(self) -> str:
        return self.state.step

    def _refuse_if_closed(self) -> None:
        if self.state.outcome is not None:
            raise ValueError(f"Ce workflow est déjà clôturé ({STATUS_LABELS[self.state.outcome]}) : action refusée.")

