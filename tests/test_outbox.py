"""Outbox and send activity against the real SMTP sink and PostgreSQL; retries on the time-skipping server."""

import dataclasses
import random
import re
from datetime import UTC, timedelta
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from uuid import uuid4

import pytest
from sqlalchemy.orm import undefer
from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.mail import MailActivities
from core import outbox
from core.db import session_scope, utcnow
from core.models import Organisation, OutboxMessage
from core.settings import get_settings
from tests.support.smtp import SmtpSink, body_text
from workflows.common import send_mail


def _enqueue(subject: str = "Relevé kilométrique", to: str = "camille@garonne.example", key: str | None = None) -> int:
    settings = get_settings()
    with session_scope() as session:
        org_id = session.query(Organisation.id).filter_by(slug="garonne").scalar()
        return outbox.enqueue(session, settings=settings, organisation_id=org_id, key=key or f"t-{uuid4().hex}",
                              to=[to], subject=subject, text="Bonjour Camille", html="<p>Bonjour Camille</p>")


def _row(outbox_id: int) -> OutboxMessage:
    with session_scope() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row is not None
        session.expunge(row)
        return row


async def test_enqueue_twice_with_the_same_key_writes_one_row() -> None:
    key = f"t-{uuid4().hex}"
    assert _enqueue(key=key) == _enqueue(key=key)
    assert _row(_enqueue(key=key)).message_id == outbox.message_id_for(key, get_settings())


async def test_send_activity_run_twice_sends_one_mail(sink: SmtpSink) -> None:
    outbox_id = _enqueue()
    activities = MailActivities(get_settings())
    env = ActivityEnvironment()
    first = await env.run(activities.send_mail, outbox_id)
    second = await env.run(activities.send_mail, outbox_id)
    assert (first.status, second.status) == ("sent", "sent")
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg["Subject"] == "Relevé kilométrique" and body_text(msg).strip() == "Bonjour Camille"
    row = _row(outbox_id)
    assert row.status == "sent" and row.attempts == 1 and msg["Message-ID"] == row.message_id
    assert row.last_reply and "accepted" in row.last_reply


async def test_4xx_is_retried_then_succeeds(sink: SmtpSink) -> None:
    outbox_id = _enqueue()
    sink.scripted_replies.append("451 4.3.0 Mailbox busy, try later")
    activities = MailActivities(get_settings())
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as err:
        await env.run(activities.send_mail, outbox_id)
    assert "451" in str(err.value) and not err.value.non_retryable
    assert _row(outbox_id).status == "pending" and "451" in (_row(outbox_id).last_reply or "")
    assert (await env.run(activities.send_mail, outbox_id)).status == "sent"
    assert len(sink.messages) == 1 and _row(outbox_id).attempts == 2


async def test_5xx_is_final_ko_with_the_reply(sink: SmtpSink) -> None:
    outbox_id = _enqueue()
    sink.scripted_replies.append("550 5.1.1 Mailbox unknown")
    result = await ActivityEnvironment().run(MailActivities(get_settings()).send_mail, outbox_id)
    assert result.status == "ko" and "550" in result.reply and "Mailbox unknown" in result.reply
    row = _row(outbox_id)
    assert row.status == "ko" and row.last_reply and "550 5.1.1 Mailbox unknown" in row.last_reply
    assert sink.messages == []


async def test_connection_refused_is_retryable() -> None:
    outbox_id = _enqueue()
    settings = get_settings().model_copy(update={"smtp_port": 1})  # nothing listens there
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(MailActivities(settings).send_mail, outbox_id)
    assert not err.value.non_retryable
    assert _row(outbox_id).status == "pending" and _row(outbox_id).attempts == 1


@pytest.mark.parametrize("subject", ["Bonjour\r\nBcc: victim@example.com", "Bonjour\nX-Injected: 1"])
async def test_crlf_in_a_header_is_refused_and_writes_nothing(subject: str) -> None:
    key = f"t-{uuid4().hex}"
    with pytest.raises(outbox.HeaderInjection, match="Retour à la ligne interdit"):
        _enqueue(subject=subject, key=key)
    with pytest.raises(outbox.HeaderInjection):
        _enqueue(to="a@example.com\r\nBcc: b@example.com", key=key)
    with session_scope() as session:
        assert session.query(OutboxMessage).filter_by(key=key).count() == 0


@workflow.defn(sandboxed=False)
class SendOneWorkflow:
    @workflow.run
    async def run(self, outbox_id: int, mail_queue: str) -> str:
        return (await send_mail(outbox_id, mail_queue)).status


async def test_workflow_retries_smtp_outage_with_backoff(time_worker: tuple[Client, str, str],
                                                         time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    """Two 4xx replies, then acceptance: the mail is delayed, not lost, and sent exactly once."""
    from temporalio.worker import Worker

    client, queue, mail_queue = time_worker
    outbox_id = _enqueue()
    sink.scripted_replies.extend(["421 4.7.0 Too many connections", "450 4.2.0 Greylisted"])
    async with Worker(client, task_queue=f"{queue}-w", workflows=[SendOneWorkflow]):
        status = await client.execute_workflow(SendOneWorkflow.run, args=[outbox_id, mail_queue],
                                               id=f"send-one-{outbox_id}", task_queue=f"{queue}-w",
                                               execution_timeout=timedelta(days=2))
    assert status == "sent"
    assert len(sink.messages) == 1 and _row(outbox_id).attempts == 3


async def test_batch_sends_each_row_once_keeps_refusals_and_retries_outages(sink: SmtpSink) -> None:
    """The campaign path: several connections; 5xx → KO, 4xx → stays pending and the activity fails
    (Temporal retries it); the retry sends only what is left."""
    from activities.mail_batch import MailBatchActivities

    ids = [_enqueue(to=f"lot{n}@garonne.example") for n in range(12)]
    sink.scripted_replies.extend(["550 5.1.1 Inconnu", "451 4.3.0 Plus tard"])
    activities = MailBatchActivities(get_settings().model_copy(update={"smtp_connections": 3}))
    with pytest.raises(ApplicationError, match="1 message\\(s\\) en attente"):
        await ActivityEnvironment().run(activities.send_mail_batch, ids)
    statuses = [_row(i).status for i in ids]
    assert statuses.count("sent") == 10 and statuses.count("ko") == 1 and statuses.count("pending") == 1
    retried = await ActivityEnvironment().run(activities.send_mail_batch, ids)
    assert (retried.sent, retried.ko, retried.pending) == (1, 0, 0)
    assert len(sink.messages) == 11 and len({m["To"] for m in sink.messages}) == 11
    again = await ActivityEnvironment().run(activities.send_mail_batch, ids)
    assert (again.sent, again.ko, again.pending) == (0, 0, 0) and len(sink.messages) == 11


def _normalised(data: bytes) -> bytes:
    """A message's bytes with its random MIME boundary and its Date taken out (they differ between two builds)."""
    data = re.sub(rb"={15}\d+==", b"BOUNDARY", data)
    return re.sub(rb"\nDate: [^\n]+\n", b"\nDate: DATE\n", data)


@pytest.mark.parametrize(("subject", "html", "sender", "cc", "reply_to"), [
    ("Relevé kilométrique", "<p>Bonjour Camille</p>", None, [], None),
    ("Plain ASCII subject", None, "Relais <no-reply@relais.local>", ["chef@garonne.example"], "parc@garonne.example"),
    ("Relevé kilométrique de Jean-Sébastien Dupont-Lefèvre, Peugeot 308 immatriculée AB-123-CD, échéance proche",
     "<p>é" + "x" * 3000 + "</p>", "Gestionnaire de flotte Garonne <flotte@garonne.example>",
     [f"copie{n}@garonne.example" for n in range(8)], "Réponses « Parc » <parc@garonne.example>"),
])
async def test_the_prebuilt_message_is_the_one_built_at_send_time(subject: str, html: str | None, sender: str | None,
                                                                  cc: list[str], reply_to: str | None) -> None:
    """Written with its MIME bytes; the bulk sender sends them dated at send time, byte for byte what `build_email`
    would build then (same headers in the same order, same bodies), Message-ID of the row."""
    key = f"t-{uuid4().hex}"
    message = outbox.NewMessage(key, ["camille@garonne.example"], subject, "Bonjour Camille,\n\nà bientôt", html,
                                cc, sender=sender, reply_to=reply_to)
    with session_scope() as session:
        org_id = session.query(Organisation.id).filter_by(slug="garonne").scalar()
        outbox_id = outbox.enqueue_many(session, settings=get_settings(), organisation_id=org_id,
                                        messages=[message])[key]
    with session_scope() as session:
        row = session.query(OutboxMessage).options(undefer(OutboxMessage.mime)).filter_by(id=outbox_id).one()
        session.expunge(row)
    assert row.mime is not None and b"\nDate:" not in row.mime
    sent = outbox.message_bytes(row)
    assert _normalised(sent) == _normalised(outbox.build_email(row).as_bytes())
    parsed = message_from_bytes(sent)
    assert parsed["Message-ID"] == row.message_id
    dated = parsedate_to_datetime(parsed["Date"]).replace(tzinfo=UTC)  # "-0000": UTC
    assert abs((dated - utcnow()).total_seconds()) < 5, "dated when sent"


async def test_a_row_without_prebuilt_bytes_is_built_when_sent() -> None:
    """Rows written before the column existed (or that `build_email` refuses) are built by the sender."""
    outbox_id = _enqueue()
    row = _row(outbox_id)
    row.mime = None
    assert _normalised(outbox.message_bytes(row)) == _normalised(outbox.build_email(row).as_bytes())


_PIECES = ["Relevé", "kilométrique", "de", "Prénom", "Élodie", "N°", "AB-123-CD", "x" * 30, "€", "🚗", "; ", ", ",
           "  ", "=?utf-8?q?x?=", "ÿ", "中文", "a=b", "_", "?", '"', "Ω", "\u00a0", "'", "é" * 20]
_ODD = ["\t", "\x0c", "\u2028"]  # what the folding treats as white space or line breaks: left to the email package


def _random_row(rnd: random.Random, n: int) -> outbox._Values:
    pieces = _PIECES + _ODD if rnd.random() < 0.3 else _PIECES

    def text() -> str:
        return "".join(rnd.choice(pieces) + rnd.choice([" ", "", "-"]) for _ in range(rnd.randint(0, 25)))

    def body() -> str:
        return "".join(rnd.choice(["Bonjour", "\n", "\r\n", "--==", "From x", ".", "é", "x" * 200, "<p>", "🚗", " "])
                       for _ in range(rnd.randint(0, 60)))

    def address() -> str:
        bare = f"{rnd.choice(['c', 'camille.dupont', 'x' * 40])}{rnd.randint(0, 99999)}@garonne.example"
        return bare if rnd.random() < 0.8 else f"{text()[:rnd.randint(0, 40)].strip() or 'Nom'} <{bare}>"

    return outbox._Values(sender=address(), recipients=[address() for _ in range(rnd.choice([1, 1, 1, 2, 5]))],
                          cc=[address() for _ in range(rnd.choice([0, 0, 0, 1, 3]))],
                          reply_to=rnd.choice([None, None, address()]), subject=text(), text_body=body(),
                          html_body=rnd.choice([None, "", body()]), message_id=f"<{n:032x}@relais.local>",
                          attachments=[])


def test_the_fast_builder_writes_what_the_email_package_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`core.mime` against `build_email` on thousands of messages: accented and long subjects (split into RFC 2047
    words), named and bare addresses, Cc, Reply-To, text only or with HTML, bodies with CRLF, "From " and "--"
    lines; identical bytes (but the random boundary), or the same refusal."""
    from core import mime

    fast = mime.message_bytes
    taken: list[bytes | None] = []

    def counted(**values: str | None) -> bytes | None:
        taken.append(fast(**values))  # type: ignore[arg-type]
        return taken[-1]

    monkeypatch.setattr(mime, "message_bytes", counted)
    rnd = random.Random(9)
    for n in range(3000):
        row = _random_row(rnd, n)
        try:
            expected: bytes | type = outbox.build_email(row).as_bytes()
        except Exception as exc:  # noqa: BLE001 - the same failure is expected from both
            expected = type(exc)
        try:
            got: bytes | type = outbox.email_bytes(row)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        if isinstance(expected, bytes) and isinstance(got, bytes):
            assert _normalised(got) == _normalised(expected), row
        else:
            assert got == expected, row
    assert sum(r is not None for r in taken) > 400, "the fast path was exercised"


def test_the_fast_builder_writes_attachments_as_the_email_package_does() -> None:
    """The notices robot's shape: the body and one or two `application/*` files (a PDF), whatever the content's
    length and last byte; identical bytes (but the random boundaries), or the `email` package when a file name
    would need quoting or folding."""
    from core import mime

    rnd = random.Random(3)
    fast = 0
    for n in range(1500):
        content = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 57, 100, 3000]))) + rnd.choice(
            [b"", b"\n", b"%%EOF\n", b"%%EOF"])
        name = rnd.choice(["avis-echeance-197.pdf", "a.pdf", "x" * 80 + ".pdf", "é.pdf", 'a"b.pdf', "a b.pdf"])
        files = [outbox.Attachment(name, rnd.choice(["application/pdf", "application/octet-stream"]), content)]
        files *= rnd.choice([1, 1, 2])
        row = dataclasses.replace(_random_row(rnd, n), attachments=[{"filename": name}] * len(files))
        try:
            expected: bytes | type = outbox.build_email(row, files).as_bytes()
        except Exception as exc:  # noqa: BLE001 - the same failure is expected from both
            expected = type(exc)
        try:
            got: bytes | type = outbox.email_bytes(row, files)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        if isinstance(expected, bytes) and isinstance(got, bytes):
            assert _normalised(got) == _normalised(expected), (row, name)
        else:
            assert got == expected, (row, name)
        fast += mime.message_bytes(sender="a@b.example", to="c@d.example", cc=None, reply_to=None, subject="S",
                                   message_id="<m@x>", date=None, text="t", html=None,
                                   attachments=[(f.content_type, f.filename, f.content) for f in files]) is not None
    assert fast > 500, "the fast path was exercised"
    with pytest.raises(ValueError):  # a row that names a file cannot go without it, on either path
        outbox.email_bytes(dataclasses.replace(_random_row(rnd, 0), attachments=[{"filename": "a.pdf"}]))
