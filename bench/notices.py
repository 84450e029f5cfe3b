"""Notices benchmark (issue 10): N notices from the run to the last mail in the sink, the robot's pause at 0.

On the real stack (embedded PostgreSQL, Temporal dev server, the project's two worker processes, smtp-sink), a broker
with N clients due next month and automatic validation: «Mail» → PDFs → «Oui» → V → the robot sends them all. Each
figure is printed against a limit measured in the same run, with the same shape:

- PDF rendering: the run's notices per second (from «Mail» to the last PDF stored) against a naive single-process
  loop, `HTML(string=...).write_pdf()` per notice with WeasyPrint's defaults, on the same notices. Goal >= 5x.
- Sending: the robot's mails per second (first to last SMTP acceptance) against a raw aiosmtplib loop over one
  kept connection sending messages of the same size with the same PDF attached, built beforehand. Goal >= 0.8x.
  The robot is suspended over «Oui» and resumed once every notice's workflow has started, as a manager who checks
  the queue first would: the figure is the robot sending its queue, not the start of a thousand workflows.
- Worker RSS: the highest resident memory of the main and mail worker processes (with their PDF children) seen
  during the run. Goal <= 500 MB.

    .venv/bin/python -m bench.notices --notices 1000
"""

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from datetime import timedelta
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import aiosmtplib
import psutil

from bench.common import free_port, smtp_sink, start_database, temporal_and_workers

PDF_GOAL, SEND_GOAL, RSS_GOAL_MB = 5.0, 0.8, 500


def seed(count: int) -> tuple[int, int, int]:
    """A broker with `count` clients, each with one receipt due next month; automatic validation, pause 0:
    (organisation id, entity id, manager user id)."""
    from sqlalchemy import update

    from core.db import session_scope
    from core.models import Organisation, User
    from core.security import hash_password
    from services.notices.models import LegalEntity, RobotSettings
    from services.notices.service import robot

    with session_scope() as session:
        org = Organisation(slug="bench-courtier", name="Courtier du banc", kind="broker")
        session.add(org)
        session.flush()
        user = User(organisation_id=org.id, email="gestion@bench-courtier.example", full_name="Gestion Banc",
                    role="manager", password_hash=hash_password("bench-password"))
        entity = LegalEntity(organisation_id=org.id, code="SIEGE", name="Cabinet du banc", address1="1 rue du Banc",
                             postal_code="75001", town="PARIS", letter_town="PARIS", next_notice_no=1,
                             email="contact@bench-courtier.example", manual_confirmation=False)
        session.add_all([user, entity])
        session.flush()
        robot.robot_settings(session, org.id)
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == org.id).values(pause_ms=0))
        org_id, entity_id, user_id = org.id, entity.id, user.id
    seed_due_receipts(org_id, count, entity_code="SIEGE", email=lambda n: f"client{n}@assure.example")
    return org_id, entity_id, user_id


def seed_due_receipts(org_id: int, count: int, *, entity_code: str, email: Callable[[int], str],
                      prefix: str = "") -> None:
    """`count` clients of the organisation, each with one contract of `entity_code` and one receipt due next month,
    saved through the service as the API does, a batch at a time."""
    from core.db import session_scope
    from core.ui import today_paris
    from services.notices.service import records

    due = today_paris().replace(day=1) + timedelta(days=40)
    makers: list[tuple[records.Kind, Callable[[int], dict[str, object]]]] = [
        (records.CLIENTS, lambda n: {
            "number": f"{prefix}B{n:05d}", "title": "M." if n % 2 else "Mme", "last_name": f"Client{n}",
            "first_name": "Alex", "address1": f"{n} rue des Avis", "postal_code": "75011", "town": "Paris",
            "email": email(n), "notice_by_email": True}),
        (records.CONTRACTS, lambda n: {
            "number": f"{prefix}CT{n:05d}", "client_number": f"{prefix}B{n:05d}", "entity_code": entity_code,
            "insurer": "CIGA - AXA", "category": "Multirisques habitation"}),
        (records.RECEIPTS, lambda n: {
            "number": f"{prefix}Q{n:05d}", "contract_number": f"{prefix}CT{n:05d}", "period_start": due,
            "period_end": due + timedelta(days=364), "collection": "confie", "receipt_type": "terme",
            "premium_ht": "412.50", "taxes": "37.13", "fees": "8.00"})]
    for kind, make in makers:
        for first in range(0, count, records.MAX_BATCH):
            with session_scope() as session:
                saved = records.save_batch(session, organisation_id=org_id, kind=kind,
                                           items=[make(n) for n in range(first, min(count, first + records.MAX_BATCH))],
                                           today=today_paris())
                assert isinstance(saved, records.SaveReport), saved


def naive_pdf_rate(htmls: list[str]) -> float:
    """Notices per second of `HTML(string=...).write_pdf()` in this process, WeasyPrint's defaults."""
    from weasyprint import HTML

    HTML(string=htmls[0]).write_pdf()  # warm: fonts and imports, as a long-running loop would have them
    started = time.perf_counter()
    for html in htmls:
        HTML(string=html).write_pdf()
    return len(htmls) / (time.perf_counter() - started)


async def raw_send_rate(port: int, count: int, pdf: bytes, filename: str) -> float:
    """Mails per second of aiosmtplib over one kept connection, each with the same PDF attached, built before."""
    messages = []
    for n in range(count):
        msg = MIMEMultipart("mixed")
        body = MIMEMultipart("alternative")
        body.attach(MIMEText("Veuillez trouver ci-joint votre avis d'échéance.", "plain", "utf-8"))
        body.attach(MIMEText("<p>Veuillez trouver ci-joint votre avis d'échéance.</p>", "html", "utf-8"))
        msg.attach(body)
        part = MIMEApplication(pdf, "pdf")
        part.add_header("Content-Disposition", "attachment", filename=filename)
        msg.attach(part)
        msg["From"], msg["To"], msg["Subject"] = "robot@bench.example", f"raw{n}@assure.example", "Avis d'échéance"
        messages.append(msg.as_bytes())
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await client.connect()
    started = time.perf_counter()
    for n, data in enumerate(messages):
        await client.sendmail("robot@bench.example", [f"raw{n}@assure.example"], data)
    elapsed = time.perf_counter() - started
    await client.quit()
    return count / elapsed


def run_status(run_id: int) -> tuple[str, int]:
    from core.db import session_scope
    from services.notices.models import NoticeRun

    with session_scope() as session:
        run = session.get(NoticeRun, run_id)
        assert run is not None
        return run.status, run.rendered


def sent(org_id: int) -> int:
    from sqlalchemy import func, select

    from core.db import session_scope
    from services.notices.models import Notice

    with session_scope() as session:
        return session.scalar(select(func.count()).where(Notice.organisation_id == org_id,
                                                         Notice.status == "OK")) or 0


def undelivered(org_id: int) -> int:
    """The organisation's starts and signals not yet handed to Temporal."""
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import WorkflowSignal

    with session_scope() as session:
        return session.scalar(select(func.count()).where(WorkflowSignal.organisation_id == org_id,
                                                         WorkflowSignal.delivered_at.is_(None))) or 0


def acceptance_span(org_id: int) -> tuple[float, int]:
    """Seconds from the first SMTP acceptance to the last, and how many."""
    from sqlalchemy import select

    from core.db import session_scope
    from services.notices.models import Notice, NoticeSend

    with session_scope() as session:
        times = sorted(t for t in session.scalars(
            select(NoticeSend.finished_at).join(Notice, Notice.id == NoticeSend.notice_id)
            .where(Notice.organisation_id == org_id, NoticeSend.status == "OK")) if t is not None)
    return ((times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0), len(times)


class RssWatch:
    """The highest RSS of the workers and their children, sampled every 0.2 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: 0 for name in pids}

    async def run(self) -> None:
        while True:
            for name, proc in self.processes.items():
                try:
                    total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], total)
            await asyncio.sleep(0.2)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--naive-sample", type=int, default=60, help="notices rendered by the naive loop")
    args = parser.parse_args()
    port = free_port()
    os.environ.update(ENVIRONMENT="test", SECRET_KEY="bench-secret-" + "x" * 40, LOG_FORMAT="json",
                      SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    start_database()
    from core.db import session_scope
    from core.models import User
    from core.settings import get_settings
    from core.ui import today_paris
    from services.notices.models import NoticeDocument
    from services.notices.service import robot, runs

    settings = get_settings()
    org_id, entity_id, user_id = seed(args.notices)
    with smtp_sink(port):
        async with temporal_and_workers() as client:
            watch = RssWatch(client.worker_pids)  # type: ignore[attr-defined]
            watcher = asyncio.create_task(watch.run())
            with session_scope() as session:
                user = session.get(User, user_id)
                assert user is not None
                raw = runs.defaults(today_paris()) | {"entity_id": str(entity_id)}
                criteria = runs.check_form(session, org_id, raw).criteria
                assert criteria is not None
                started = time.perf_counter()
                run = runs.start_run(session, settings, user=user, criteria=criteria, workstation="bench")
                session.flush()
                run_id = run.id
            while (state := run_status(run_id))[0] not in ("awaiting_answer", "failed"):  # noqa: ASYNC110 (DB)
                await asyncio.sleep(0.1)
            rendered_at = time.perf_counter()
            assert state[0] == "awaiting_answer", state
            render_seconds = rendered_at - started
            with session_scope() as session:  # «Suspendre», «Oui»: the notices are V, their workflows start
                answered, user = session.get(runs.NoticeRun, run_id), session.get(User, user_id)
                assert answered is not None and user is not None
                robot.set_paused(session, settings, user=user, paused=True)
                runs.answer_run(session, settings, user=user, run=answered, confirmed=True)
            while run_status(run_id)[0] != "confirmed" or undelivered(org_id):  # noqa: ASYNC110 (in the database)
                await asyncio.sleep(0.1)
            queued_at = time.perf_counter()
            with session_scope() as session:  # «Reprendre»: the robot sends the queue
                user = session.get(User, user_id)
                assert user is not None
                robot.set_paused(session, settings, user=user, paused=False)
            while sent(org_id) < args.notices:  # noqa: ASYNC110 (the workers' progress, in the database)
                await asyncio.sleep(0.2)
            finished = time.perf_counter()
            watcher.cancel()
            with session_scope() as session:
                htmls = [html for _, html in runs.page_htmls(session, run_id, 0, args.naive_sample)]
                document = session.query(NoticeDocument).filter(NoticeDocument.organisation_id == org_id).first()
                assert document is not None
                pdf, filename = document.content, document.filename
            raw_rate = await raw_send_rate(port, min(args.notices, 500), pdf, filename)
    naive = await asyncio.to_thread(naive_pdf_rate, htmls)
    span, accepted = acceptance_span(org_id)
    pdf_rate = args.notices / render_seconds
    send_rate = (accepted - 1) / span if span else 0.0
    rss_mb = {name: peak / 2**20 for name, peak in watch.peak.items()}
    cores = psutil.cpu_count() or 1
    print(f"run: {args.notices} notices, «Mail» → last mail in the sink in {finished - started:.1f} s "
          f"(PDFs {render_seconds:.1f} s; «Suspendre», «Oui» → the notices' workflows started in "
          f"{queued_at - rendered_at:.1f} s; «Reprendre» → {args.notices} OK in {finished - queued_at:.1f} s); "
          f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f}")
    pdf_ratio = pdf_rate / naive
    print(f"PDF: {pdf_rate:.1f} notices/s against a naive single-process loop at {naive:.1f}/s "
          f"(on {len(htmls)} of the same notices) = {pdf_ratio:.2f}x (goal >= {PDF_GOAL}x): "
          f"{'MET' if pdf_ratio >= PDF_GOAL else 'MISSED'}")
    if pdf_ratio < PDF_GOAL:
        print(f"why: rendering is CPU-bound WeasyPrint layout (the naive loop spends {1000 / naive:.0f} ms a notice, "
              f"almost all of it in layout and drawing, not start-up); parallel pages can at best use the "
              f"{cores} cores of this machine, so about {cores}x the naive loop, and the run also writes each PDF "
              f"to PostgreSQL and shares the cores with the database, Temporal and the workers")
    send_ratio = send_rate / raw_rate
    print(f"sending: {send_rate:.1f} mails/s from the first acceptance to the last against a raw aiosmtplib loop "
          f"with the same PDF attached at {raw_rate:.1f}/s = {send_ratio:.2f} (goal >= {SEND_GOAL}): "
          f"{'MET' if send_ratio >= SEND_GOAL else 'MISSED'}")
    if send_ratio < SEND_GOAL:
        print(f"why: a robot mail costs {1000 / send_rate:.1f} ms against {1000 / raw_rate:.1f} ms for the raw loop, "
              "which only sends pre-built bytes: the robot claims its notices 32 at a time in validated order and "
              "writes their sends and outbox rows in one transaction (the joined read, each PDF checked against its "
              "SHA-256, the template merged, the MIME message built: about 1.2 ms a notice on a quiet core, in a "
              "thread beside the sending), and records the replies in groups of at most 16 with their outcome "
              "signals, so that a crash re-sends at most 17; meanwhile the notices' workflows apply the outcomes "
              "and PostgreSQL and Temporal share the same cores")
    worst = max(rss_mb.values())
    print("worker RSS (with PDF children): " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss_mb.items())
          + f" (goal <= {RSS_GOAL_MB} MB each): {'MET' if worst <= RSS_GOAL_MB else 'MISSED'}")
    print(f"one notice's PDF: {len(pdf) / 1024:.0f} KiB")
    return 0 if pdf_ratio >= PDF_GOAL and send_ratio >= SEND_GOAL and worst <= RSS_GOAL_MB else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
