"""Notices activities: thin adapters over the notices service for the run's workflow (render pages, «Oui», «Non»),
each notice's workflow (apply a request or a send's outcome, alert, close) and the mail robot (its settings, and
sending the validated notices one by one on a kept SMTP connection)."""

import asyncio
import contextlib
import time

import aiosmtplib
from sqlalchemy import select
from temporalio import activity

from activities.mail import smtp_code
from core.db import session_scope
from core.logging import log
from core.models import OutboxMessage
from core.outbox import Attachment, build_email, envelope, smtp_client, smtp_quit
from core.pdf import PdfError, render_pdfs
from core.settings import Settings
from services.notices.models import NoticeRun, RobotSettings, RunItem
from services.notices.service import alerts, queue, robot, runs
from workflows.data.notices import (
    FAILED,
    SENT,
    Applied,
    NoticeOutcome,
    NoticeRef,
    RenderedPage,
    RobotBatch,
    RobotConfig,
    RobotRun,
    RobotState,
    RunEnd,
    RunInput,
    RunPage,
)

PDF_TIMEOUT_SECONDS = 30.0
PAUSE_CHECK_SECONDS = 1.0


def _on(settings: Settings, task_queue: str, mail_task_queue: str) -> Settings:
    """The settings with the task queues of the calling workflow: what an activity queues follows its caller."""
    return settings.model_copy(update={"task_queue": task_queue, "mail_task_queue": mail_task_queue})


class NoticeActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # --- The run ------------------------------------------------------------------------------------------------

    @activity.defn(name="begin_notice_run")
    def begin_notice_run(self, run_id: int) -> int:
        """Rendering starts: the number of notices to render."""
        with session_scope() as session:
            runs.set_status(session, run_id, "rendering")
            run = session.get(NoticeRun, run_id)
            assert run is not None
            return run.planned

    @activity.defn(name="render_notice_page")
    def render_notice_page(self, page: RunPage) -> RenderedPage:
        """One page of the run's notices, rendered in one child process, kept on the run's items."""
        with session_scope() as session:
            htmls = runs.page_htmls(session, page.run_id, page.page, page.page_size)
        results = render_pdfs([h for _, h in htmls], timeout_seconds=PDF_TIMEOUT_SECONDS)
        done = {item_id: pdf for (item_id, _), pdf in zip(htmls, results, strict=True) if isinstance(pdf, bytes)}
        failed = [(item_id, str(r)) for (item_id, _), r in zip(htmls, results, strict=True)
                  if isinstance(r, PdfError)]
        with session_scope() as session:
            runs.store_page(session, page.run_id, done)
            numbers = dict(session.execute(select(RunItem.id, RunItem.notice_number)
                                           .where(RunItem.id.in_([i for i, _ in failed]))).all())
        return RenderedPage(len(done), [f"n°{numbers.get(i)} : {why}" for i, why in failed])

    @activity.defn(name="await_notice_answer")
    def await_notice_answer(self, run_id: int) -> None:
        with session_scope() as session:
            runs.set_status(session, run_id, "awaiting_answer")

    @activity.defn(name="end_notice_run")
    def end_notice_run(self, end: RunEnd) -> None:
        """«Non», no answer in time, or PDFs that would not render: nothing is kept (the numbers stay used)."""
        with session_scope() as session:
            runs.discard_run(session, end.run_id, end.status, "; ".join(end.reasons) or None)

    @activity.defn(name="confirm_notice_run")
    def confirm_notice_run(self, inp: RunInput) -> int:
        with session_scope() as session:
            return runs.confirm_run(session, _on(self.settings, inp.task_queue, inp.mail_task_queue), inp.run_id)

    # --- Each notice ---------------------------------------------------------------------------------------------

    @activity.defn(name="apply_notice_action")
    def apply_notice_action(self, ref: NoticeRef) -> Applied:
        with session_scope() as session:
            return queue.apply_pending(session, _on(self.settings, ref.task_queue, ref.mail_task_queue),
                                       ref.notice_id)

    @activity.defn(name="apply_send_outcome")
    def apply_send_outcome(self, outcome: NoticeOutcome) -> Applied:
        with session_scope() as session:
            return queue.apply_outcome(session, outcome.notice_id, outcome.outcome)

    @activity.defn(name="alert_notice_manager")
    def alert_notice_manager(self, notice_id: int) -> int | None:
        """The account manager's alert if the notice is still E, B or KO: its outbox id (None: nothing to say)."""
        with session_scope() as session:
            return alerts.alert_if_stuck(session, self.settings, notice_id)

    @activity.defn(name="close_notice")
    def close_notice(self, notice_id: int) -> None:
        with session_scope() as session:
            queue.close_notice(session, notice_id)

    # --- The mail robot ------------------------------------------------------------------------------------------

    @activity.defn(name="notice_robot_config")
    def notice_robot_config(self, organisation_id: int) -> RobotConfig:
        with session_scope() as session:
            return robot.config(session, organisation_id)

    @activity.defn(name="notice_robot_state")
    def notice_robot_state(self, state: RobotState) -> None:
        with session_scope() as session:
            robot.set_state(session, state.organisation_id, state.state, state.error)


class NoticeMailActivities:
    """On the mail task queue: the robot's sending."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="send_validated_notices")
    async def send_validated_notices(self, batch: RobotRun) -> RobotBatch:
        """Send validated notices one by one until none is left, a temporary error, a pause, or the limit. Returns
        what it did and why it stopped; its state is written on the robot's settings."""
        organisation_id, limit = batch.organisation_id, batch.limit
        settings = self.settings.model_copy(update={"task_queue": batch.task_queue})
        sent = failed = 0
        client: aiosmtplib.SMTP | None = None
        stopped, error = "limit", None
        looked_at = 0.0
        # With no pause between mails, the next notice is claimed and read while the current one is on the wire.
        ahead: asyncio.Task[tuple[robot.PreparedSend, OutboxMessage, list[Attachment], RobotSettings] | None] | None \
            = None
        try:
            while sent + failed < limit:
                if time.monotonic() - looked_at >= PAUSE_CHECK_SECONDS:  # «Suspendre» is seen within a second
                    looked_at = time.monotonic()
                    if (await asyncio.to_thread(self._config, organisation_id)).paused:
                        stopped = "paused"
                        break
                prepared = await ahead if ahead else await asyncio.to_thread(self._next, settings, organisation_id)
                ahead = None
                if prepared is None:
                    stopped = "empty"
                    break
                send, row, attachments, robot_settings = prepared
                activity.heartbeat(sent + failed)
                if not robot_settings.pause_ms and sent + failed + 1 < limit:
                    ahead = asyncio.create_task(asyncio.to_thread(self._next, settings, organisation_id,
                                                                  {send.send_id}))
                try:
                    if client is None or not client.is_connected:
                        client = smtp_client(self.settings)
                        await client.connect()
                        if self.settings.smtp_username:
                            await client.login(self.settings.smtp_username, self.settings.smtp_password or "")
                    sender, recipients = envelope(row)
                    _errors, reply = await client.sendmail(sender, recipients,
                                                           build_email(row, attachments).as_bytes())
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    code = smtp_code(exc)
                    reply = f"{code} {getattr(exc, 'message', '') or exc}" if code else f"{type(exc).__name__}: {exc}"
                    if code is not None and code >= 500:
                        await asyncio.to_thread(self._record, settings, send.send_id, FAILED, reply)
                        failed += 1
                        error = reply
                        assert client is not None  # connected above: the refusal came from the server
                        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                            await client.rset()  # usable for the next notice
                        continue  # this address is refused; the next notice may go
                    tries_left = await asyncio.to_thread(self._record_try, settings, send.send_id, reply,
                                                         robot_settings)
                    if not tries_left:
                        failed += 1
                    stopped, error = "error_wait", reply
                    if client is not None:
                        client.close()
                    client = None
                    break
                await asyncio.to_thread(self._record, settings, send.send_id, SENT, reply)
                sent += 1
                if robot_settings.pause_ms:
                    await asyncio.sleep(robot_settings.pause_ms / 1000)
        finally:
            if ahead is not None:  # claimed ahead and not sent: it stays «sending», first of the next round
                with contextlib.suppress(Exception):
                    await ahead
            if client is not None:
                await smtp_quit(client)
        state = {"limit": "running", "empty": "idle", "paused": "paused", "error_wait": "error_wait"}[stopped]
        await asyncio.to_thread(self._state, organisation_id, state, error)
        log.info("notices.robot_batch", organisation_id=organisation_id, sent=sent, failed=failed, stopped=stopped)
        return RobotBatch(sent, failed, stopped, error)

    def _config(self, organisation_id: int) -> RobotConfig:
        with session_scope() as session:
            return robot.config(session, organisation_id)

    def _next(self, settings: Settings, organisation_id: int, busy: frozenset[int] | set[int] = frozenset()
              ) -> tuple[robot.PreparedSend, OutboxMessage, list[Attachment], RobotSettings] | None:
        """The next send (claimed, its outbox row written: committed before anything goes out), with its bytes."""
        with session_scope() as session:  # one transaction, committed before anything goes out
            prepared = robot.next_send(session, settings, organisation_id, busy)
            if prepared is None:
                return None
            session.flush()
            row = session.get(OutboxMessage, prepared.outbox_id)
            assert row is not None
            attachments = prepared.attachments if prepared.attachments is not None else \
                robot.load_attachments(session, row)
            settings_row = robot.robot_settings(session, organisation_id)
            session.expunge_all()
        return prepared, row, attachments, settings_row

    @staticmethod
    def _record(settings: Settings, send_id: int, status: str, reply: str) -> None:
        with session_scope() as session:
            robot.record_send(session, settings, send_id, status=status, reply=reply)

    @staticmethod
    def _record_try(settings: Settings, send_id: int, reply: str, robot_settings: RobotSettings) -> bool:
        """A 4xx or connection error: counted; after the last allowed try the send is KO. True: tries are left."""
        with session_scope() as session:
            return robot.record_try(session, settings, send_id, reply=reply,
                                    max_attempts=robot_settings.max_attempts)

    def _state(self, organisation_id: int, state: str, error: str | None) -> None:
        with session_scope() as session:
            robot.set_state(session, organisation_id, state, error)
