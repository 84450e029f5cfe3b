"""One durable workflow per driver (or per fine): Mail and Attente steps, closed by the driver's answer or a
manager's action (both recorded in the read model first, then told by the `closed` signal), or when the steps run
out.

The steps, templates included, are a snapshot taken at start: editing the definition later never
changes a running workflow.
"""

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow

from workflows.common import DB_RETRY, send_mail
from workflows.data.drivers import CLOSED, DRIVER_WORKFLOW, Closure, DriverMail, DriverWorkflowInput, Ending, StepChange

with workflow.unsafe.imports_passed_through():
    from activities.driver_workflows import DriverWorkflowActivities
    from core.temporal import SA_STATUS

DB_TIMEOUT = timedelta(minutes=2)


# Unsandboxed: a campaign keeps thousands of these open, and the sandbox costs ~10 ms of worker CPU per
# workflow task. The code below only uses the workflow API (no I/O, no clock), and a replay test
# (tests/test_driver_workflow.py) checks it stays deterministic.
@workflow.defn(name=DRIVER_WORKFLOW, sandboxed=False)
class DriverWorkflow:
    def __init__(self) -> None:
        self.closed_as: str | None = None
        self.step = ""

    @workflow.run
    async def run(self, inp: DriverWorkflowInput) -> str:
        for index, step in enumerate(inp.steps):
            if index < inp.start_index:
                continue
            if self.closed_as:
                break
            following = inp.steps[index + 1].label if index + 1 < len(inp.steps) else ""
            self.step = step.label
            if index > inp.start_index or inp.start_index == 0:
                await workflow.execute_activity_method(
                    DriverWorkflowActivities.record_driver_step, StepChange(inp.workflow_id, index, step.label,
                                                                            following),
                    start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
            if step.kind == "mail":
                outbox_id = await workflow.execute_activity_method(
                    DriverWorkflowActivities.prepare_driver_mail,
                    DriverMail(inp.workflow_id, inp.driver_id, index, step, inp.fine_id),
                    start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
                if outbox_id:
                    await send_mail(outbox_id, inp.mail_task_queue)
            else:
                # A durable timer that the driver's or a manager's action cuts short.
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self.closed_as is not None,
                                                  timeout=timedelta(days=step.days))
        ended = await workflow.execute_activity_method(
            DriverWorkflowActivities.finish_driver_workflow, Ending(inp.workflow_id, inp.fine_id),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
        workflow.upsert_search_attributes([SA_STATUS.value_set(ended.status_label)])
        return ended.status

    @workflow.signal(name=CLOSED)
    def closed(self, closure: Closure) -> None:
        """The read model was closed (driver's answer, manager's validation or cancellation): stop at once."""
        if self.closed_as is None:
            self.closed_as = closure.status

    @workflow.query
    def current_step(self) -> str:
        return self.step
