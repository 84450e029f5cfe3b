"""Notices: the run of an «Avis d'échéances» edition, each notice, and the organisation's mail robot.

- `NoticeRunWorkflow` renders the run's PDFs by pages, several pages at once, then waits for the answer to
  «Marquer les avis comme édités ?» (or its timeout, as «Non»).
- `NoticeWorkflow` is the only writer of its notice's status: it applies the requests channels record (`action`)
  and the robot's outcomes (`send_outcome`), alerts the account manager near the due date, and ends after it.
- `NoticeMailRobotWorkflow`, the «Automate d'envoi», sends the validated notices in order; it waits `idle_ms` when
  there is nothing to send (or until woken), `error_wait_ms` after a temporary error, and nothing while paused.
"""

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.common import BATCH_HEARTBEAT, DB_RETRY, DB_TIMEOUT, send_mail
from workflows.data.notices import (
    ACTION,
    MAIL_ROBOT,
    NOTICE,
    NOTICE_RUN,
    ROBOT_CONTROL,
    RUN_ANSWER,
    SEND_OUTCOME,
    NoticeAction,
    NoticeInput,
    NoticeOutcome,
    NoticeRef,
    RobotControl,
    RobotInput,
    RobotRun,
    RobotState,
    RunAnswer,
    RunEnd,
    RunInput,
    RunPage,
    SendOutcome,
)

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities, NoticeMailActivities
    from core.temporal import SA_STATUS

RENDER_TIMEOUT = timedelta(minutes=10)
SEND_TIMEOUT = timedelta(minutes=30)
# A notice renders in well under a second and the robot's writer beats every 5 s: a killed worker's page or
# round is retried elsewhere within about half a minute.
RENDER_HEARTBEAT = timedelta(seconds=40)
ROBOT_HEARTBEAT = BATCH_HEARTBEAT
ROBOT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                          maximum_interval=timedelta(minutes=5))
MAX_PAGE_SIZE = 200  # notices rendered by one activity at most (a page that fails is retried whole)
BATCHES_BEFORE_NEW_RUN = 200  # then continue-as-new: the history stays short however long the robot runs


@workflow.defn(name=NOTICE_RUN, sandboxed=False)
class NoticeRunWorkflow:
    """Id `avis-run-<org>-<run id>`."""

    def __init__(self) -> None:
        self.answer: RunAnswer | None = None

    @workflow.run
    async def run(self, inp: RunInput) -> str:
        planned = await workflow.execute_activity_method(
            NoticeActivities.begin_notice_run, inp.run_id, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
        # As few pages as keep every rendering process busy: each starts a child that loads WeasyPrint (about a
        # second), so pages of 25 on two cores spent a third of their time starting. Their count is a multiple of
        # the pages rendered at once, all of one size: no round where one process works and the other waits.
        size = min(MAX_PAGE_SIZE, max(inp.page_size, -(-planned // inp.parallel_pages)))
        if workflow.patched("notices-balanced-pages") and planned > size:
            rounds = -(-planned // (size * inp.parallel_pages))
            size = max(inp.page_size, -(-planned // (rounds * inp.parallel_pages)))
        pages = list(range(-(-planned // size)))
        failed: list[str] = []
        for first in range(0, len(pages), inp.parallel_pages):
            done = await asyncio.gather(*(workflow.execute_activity_method(
                NoticeActivities.render_notice_page, RunPage(inp.run_id, page, size),
                start_to_close_timeout=RENDER_TIMEOUT, heartbeat_timeout=RENDER_HEARTBEAT, retry_policy=DB_RETRY)
                for page in pages[first:first + inp.parallel_pages]))
            failed += [why for page in done for why in page.failed]
        if failed:
            await self._end(RunEnd(inp.run_id, "failed", failed))
            return "failed"
        await workflow.execute_activity_method(
            NoticeActivities.await_notice_answer, inp.run_id, start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY)
        try:
            await workflow.wait_condition(lambda: self.answer is not None,
                                          timeout=timedelta(hours=inp.answer_timeout_hours))
        except TimeoutError:
            await self._end(RunEnd(inp.run_id, "expired", []))
            return "expired"
        assert self.answer is not None
        if not self.answer.confirmed:
            await self._end(RunEnd(inp.run_id, "declined", []))
            return "declined"
        await workflow.execute_activity_method(
            NoticeActivities.confirm_notice_run, inp, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
        return "confirmed"

    async def _end(self, end: RunEnd) -> None:
        await workflow.execute_activity_method(
            NoticeActivities.end_notice_run, end, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)

    @workflow.signal(name=RUN_ANSWER)
    def answered(self, answer: RunAnswer) -> None:
        if self.answer is None:  # the first answer counts (the service refuses a second one)
            self.answer = answer


@workflow.defn(name=NOTICE, sandboxed=False)
class NoticeWorkflow:
    """Id `avis-<org>-<entité>-<n°>`."""

    @workflow.init
    def __init__(self, inp: NoticeInput) -> None:
        self.todo: list[SendOutcome | None] = []  # None: a recorded request to apply

    @workflow.run
    async def run(self, inp: NoticeInput) -> str:
        alert_at = inp.alert_at
        status = ""
        while True:
            while self.todo:
                item = self.todo.pop(0)
                if item is None:
                    applied = await workflow.execute_activity_method(
                        NoticeActivities.apply_notice_action,
                        NoticeRef(inp.notice_id, workflow.info().task_queue, inp.mail_task_queue),
                        start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
                else:
                    applied = await workflow.execute_activity_method(
                        NoticeActivities.apply_send_outcome, NoticeOutcome(inp.notice_id, item),
                        start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
                if applied.status != status:
                    status = applied.status
                    workflow.upsert_search_attributes([SA_STATUS.value_set(applied.label)])
            now = workflow.now()
            if now >= inp.close_at:
                break
            wake_at = min(alert_at, inp.close_at) if alert_at else inp.close_at
            try:
                await workflow.wait_condition(lambda: bool(self.todo),
                                              timeout=max(wake_at - now, timedelta(seconds=1)))
            except TimeoutError:
                if alert_at is not None and workflow.now() >= alert_at:
                    alert_at = None
                    outbox_id = await workflow.execute_activity_method(
                        NoticeActivities.alert_notice_manager, inp.notice_id, start_to_close_timeout=DB_TIMEOUT,
                        retry_policy=DB_RETRY)
                    if outbox_id:
                        await send_mail(outbox_id, inp.mail_task_queue)
        await workflow.execute_activity_method(
            NoticeActivities.close_notice, inp.notice_id, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
        return status

    @workflow.signal(name=ACTION)
    def action(self, _request: NoticeAction) -> None:
        self.todo.append(None)  # the request itself is read from the notice (idempotent: applied once)

    @workflow.signal(name=SEND_OUTCOME)
    def send_outcome(self, outcome: SendOutcome) -> None:
        self.todo.append(outcome)


@workflow.defn(name=MAIL_ROBOT, sandboxed=False)
class NoticeMailRobotWorkflow:
    """Id `avis-robot-<org>`: one per organisation, for as long as it has notices to send."""

    def __init__(self) -> None:
        self.woken = False

    @workflow.run
    async def run(self, inp: RobotInput) -> None:
        for _ in range(BATCHES_BEFORE_NEW_RUN):
            self.woken = False
            config = await workflow.execute_activity_method(
                NoticeActivities.notice_robot_config, inp.organisation_id, start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY)
            if config.paused:  # «Suspendre»: nothing goes out until «Reprendre»
                await workflow.wait_condition(lambda: self.woken)
                continue
            batch = await workflow.execute_activity_method(
                NoticeMailActivities.send_validated_notices,
                RobotRun(inp.organisation_id, inp.batch_limit, inp.task_queue),
                task_queue=inp.mail_task_queue, start_to_close_timeout=SEND_TIMEOUT,
                heartbeat_timeout=ROBOT_HEARTBEAT, retry_policy=ROBOT_RETRY)
            if batch.stopped == "error_wait":
                # The seed's AE_WAIT_IF_ERROR: a plain timer (a wake does not cut it short: the server needs time)
                await workflow.sleep(timedelta(milliseconds=config.error_wait_ms))
                await workflow.execute_activity_method(
                    NoticeActivities.notice_robot_state, RobotState(inp.organisation_id, "running"),
                    start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)
            elif batch.stopped == "empty":
                with contextlib.suppress(TimeoutError):  # AE_WAIT_IF_NOTHING_TO_DO, or until woken
                    await workflow.wait_condition(lambda: self.woken,
                                                  timeout=timedelta(milliseconds=config.idle_ms))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp)

    @workflow.signal(name=ROBOT_CONTROL)
    def control(self, command: RobotControl) -> None:
        self.woken = True  # pause / resume / wake: the workflow reads the settings again

