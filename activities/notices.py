"""Notices activities: thin adapters over the notices service for the run's workflow (render pages, «Oui», «Non»),
each notice's workflow (apply a request or a send's outcome, alert, close) and the mail robot (its settings, and
sending the validated notices in order on a kept SMTP connection, the replies recorded by the group-commit writer)."""

import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass, field
from datetime import datetime

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity

from activities.mail import smtp_code
from activities.recorder import Recorder
from core.db import session_scope, utcnow
from core.logging import log
from core.models import OutboxMessage
from core.outbox import Attachment, HeaderInjection, email_bytes, envelope, smtp_client, smtp_quit
from core.pdf import PdfError, render_pdfs
from core.settings import Settings
from services.notices.models import NoticeRun, RunItem
from services.notices.service import alerts, queue, robot, runs
from services.notices.service.documents import DocumentCorrupted
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
CLAIM_AHEAD = 32  # notices claimed at once when there is no pause between mails (each says «envoi en cours»)


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
        results = render_pdfs([h for _, h in htmls], timeout_seconds=PDF_TIMEOUT_SECONDS, progress=activity.heartbeat)
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


@dataclass(frozen=True)
class _Ready:
    """A claimed send, its message built (or why it cannot be)."""

    send_id: int
    sender: str
    recipients: list[str]
    data: bytes
    refused: str | None = None  # a header the message cannot carry: KO at once, nothing sent


@dataclass
class _Outcome:
    send_id: int
    status: str  # sent | ko (the Recorder's counts)
    reply: str
    at: datetime = field(default_factory=utcnow)


class NoticeMailActivities:
    """On the mail task queue: the robot's sending."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="send_validated_notices")
    async def send_validated_notices(self, batch: RobotRun) -> RobotBatch:
        """Send validated notices in order until none is left, a temporary error, a pause, or the limit. Returns
        what it did and why it stopped; its state is written on the robot's settings."""
        organisation_id, limit = batch.organisation_id, batch.limit
        settings = self.settings.model_copy(update={"task_queue": batch.task_queue})
        recorder = Recorder[_Outcome](functools.partial(self._record, settings, organisation_id))
        writer = asyncio.create_task(recorder.run())
        client: aiosmtplib.SMTP | None = None
        stopped, error, handled, tried_out = "limit", None, 0, 0
        held: set[int] = set()  # the sends this round claimed: never taken again as "unfinished" by a claim ahead
        tried: set[int] = set()  # those it tried to send (or refused)
        ahead: asyncio.Task[list[_Ready]] | None = None
        config, looked_at = None, 0.0
        try:
            while handled < limit:
                if config is None or time.monotonic() - looked_at >= PAUSE_CHECK_SECONDS:  # «Suspendre» within 1 s
                    looked_at = time.monotonic()
                    config = await asyncio.to_thread(self._config, organisation_id)
                    if config.paused:
                        stopped = "paused"
                        break
                room = limit - handled
                window = 1 if config.pause_ms else min(CLAIM_AHEAD, room)
                claimed = await ahead if ahead else await asyncio.to_thread(
                    self._claim, settings, organisation_id, window, frozenset(held))
                ahead = None
                if not claimed:
                    stopped = "empty"
                    break
                held.update(r.send_id for r in claimed)
                if not config.pause_ms and room > len(claimed):  # the next ones are read while these go out
                    ahead = asyncio.create_task(asyncio.to_thread(
                        self._claim, settings, organisation_id, min(window, room - len(claimed)), frozenset(held)))
                for ready in claimed:
                    handled += 1
                    tried.add(ready.send_id)
                    await recorder.room()
                    if ready.refused:
                        recorder.add(_Outcome(ready.send_id, "ko", ready.refused))
                        continue
                    try:
                        if client is None or not client.is_connected:
                            client = await self._connect()
                        _errors, reply = await client.sendmail(ready.sender, ready.recipients, ready.data)
                    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                        code = smtp_code(exc)
                        reply = f"{code} {getattr(exc, 'message', '') or exc}" if code else \
                            f"{type(exc).__name__}: {exc}"
                        if code is not None and code >= 500:
                            recorder.add(_Outcome(ready.send_id, "ko", reply))
                            error = reply
                            assert client is not None  # connected above: the refusal came from the server
                            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                                await client.rset()  # usable for the next notice
                            continue  # this address is refused; the next notice may go
                        # A 4xx or a lost connection: this try is counted and the round stops; this send is the
                        # first of the next one, after the robot's wait.
                        await recorder.drain()
                        tries_left = await asyncio.to_thread(self._record_try, settings, organisation_id,
                                                             ready.send_id, reply)
                        tried_out += not tries_left
                        stopped, error = "error_wait", reply
                        if client is not None:
                            client.close()
                        client = None
                        break
                    recorder.add(_Outcome(ready.send_id, "sent", reply))
                    if config.pause_ms:
                        await asyncio.sleep(config.pause_ms / 1000)
                if stopped == "error_wait":
                    break
        finally:
            recorder.close()
            await asyncio.shield(writer)  # what was sent gets recorded, whatever stopped us
            if ahead is not None:
                with contextlib.suppress(Exception):
                    held.update(r.send_id for r in await ahead)
            if client is not None:
                await smtp_quit(client)
        # Claimed and never tried (claimed ahead, or after the 4xx): given back, so that while the robot waits or is
        # paused they can still be blocked. A crash skips this: they stay «sending» and go first next round.
        if held - tried:
            await asyncio.to_thread(self._release, organisation_id, held - tried)
        sent, failed = recorder.counts.sent, recorder.counts.ko + tried_out
        state = {"limit": "running", "empty": "idle", "paused": "paused", "error_wait": "error_wait"}[stopped]
        await asyncio.to_thread(self._state, organisation_id, state, error)
        log.info("notices.robot_batch", organisation_id=organisation_id, sent=sent, failed=failed, stopped=stopped)
        return RobotBatch(sent, failed, stopped, error)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = smtp_client(self.settings)
        await client.connect()
        if self.settings.smtp_username:
            await client.login(self.settings.smtp_username, self.settings.smtp_password or "")
        return client

    def _config(self, organisation_id: int) -> RobotConfig:
        with session_scope() as session:
            return robot.config(session, organisation_id)

    def _claim(self, settings: Settings, organisation_id: int, count: int, held: frozenset[int]) -> list[_Ready]:
        """The next sends, claimed and written (committed before anything goes out), their messages built."""
        with session_scope() as session:
            prepared = robot.claim_sends(session, settings, organisation_id, count, held)
            rows = {r.id: r for r in session.scalars(select(OutboxMessage).where(
                OutboxMessage.id.in_([p.outbox_id for p in prepared])))}
            loaded = [(p, rows[p.outbox_id], self._attachments(session, p, rows[p.outbox_id])) for p in prepared]
            session.expunge_all()
        out = []
        for p, row, attachments in loaded:
            sender, recipients = envelope(row)
            if attachments is None:
                out.append(_Ready(p.send_id, sender, recipients, b"", robot.CORRUPTED))
                continue
            try:
                out.append(_Ready(p.send_id, sender, recipients, email_bytes(row, attachments)))
            except HeaderInjection as exc:
                out.append(_Ready(p.send_id, sender, recipients, b"", str(exc)))
        return out

    @staticmethod
    def _attachments(session: Session, prepared: robot.PreparedSend, row: OutboxMessage) -> list[Attachment] | None:
        """The PDF of a send (None: it is gone or its bytes changed since it was stored: it cannot go)."""
        if prepared.attachments is not None:
            return prepared.attachments
        try:
            return robot.load_attachments(session, row)
        except (LookupError, DocumentCorrupted):
            return None

    @staticmethod
    def _record(settings: Settings, organisation_id: int, outcomes: list[_Outcome]) -> None:
        with session_scope() as session:
            robot.record_replies(session, settings, organisation_id, [
                robot.SendReply(o.send_id, SENT if o.status == "sent" else FAILED, o.reply, o.at) for o in outcomes])

    @staticmethod
    def _record_try(settings: Settings, organisation_id: int, send_id: int, reply: str) -> bool:
        """A 4xx or connection error: counted; after the last allowed try the send is KO. True: tries are left."""
        with session_scope() as session:
            max_attempts = robot.robot_settings(session, organisation_id).max_attempts
            return robot.record_try(session, settings, organisation_id, send_id, reply=reply,
                                    max_attempts=max_attempts)

    @staticmethod
    def _release(organisation_id: int, send_ids: set[int]) -> None:
        with session_scope() as session:
            robot.release_sends(session, organisation_id, send_ids)

    def _state(self, organisation_id: int, state: str, error: str | None) -> None:
        with session_scope() as session:
            robot.set_state(session, organisation_id, state, error)
