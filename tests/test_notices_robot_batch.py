"""The robot's sending activity with no pause between mails, on PostgreSQL and the SMTP catcher: more validated notices
than it claims at once, sent in the order they were validated, each once, with its outcome recorded and signalled
to its workflow; a 5xx is KO at once and the rest go on; a 4xx stops the round, gives back what it had claimed
ahead, and the next round tries the interrupted send again first, each notice still sent once."""

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text, update
from temporalio.testing import ActivityEnvironment

from activities.notices import CLAIM_AHEAD, NoticeMailActivities
from core.db import session_scope, utcnow
from core.models import OutboxMessage, WorkflowSignal
from core.settings import get_settings
from services.notices.models import Client, Contract, Notice, NoticeDocument, NoticeSend, Receipt, RobotSettings
from services.notices.service import queue, records, robot
from services.notices.service.documents import store_notice_pdf
from tests.support.notices import (  # noqa: F401 (fixtures)
    Broker,
    client_item,
    contract_item,
    make_broker,
    notices_http,
    notices_server,
    receipt_item,
    save,
)
from tests.support.smtp import SmtpSink
from tests.support.web import login
from tests.support.web import text as page_text
from workflows.data.notices import SEND_OUTCOME, RobotRun

COUNT = CLAIM_AHEAD + 8  # more than one claim


def _validated_notices(count: int) -> tuple[Broker, list[str]]:
    """`count` notices in status V, validated one second apart (the robot's order is the reverse of the dossiers'):
    the broker and the addresses in the order the robot must send them."""
    broker = make_broker()
    numbers = [f"R{n:03d}" for n in range(count)]
    save(broker, records.CLIENTS, *(client_item(n) for n in numbers))
    save(broker, records.CONTRACTS, *(contract_item(f"C{n}", n) for n in numbers))
    save(broker, records.RECEIPTS, *(receipt_item(f"Q{n}", f"C{n}") for n in numbers))
    entity_id = broker.entities["SIEGE"]
    start = utcnow()
    with session_scope() as session:
        robot.robot_settings(session, broker.id)
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == broker.id).values(pause_ms=0))
        rows = session.execute(select(Client.id, Client.email, Receipt.id).join(
            Contract, Contract.client_id == Client.id).join(
            Receipt, Receipt.contract_id == Contract.id).where(Client.organisation_id == broker.id)
            .order_by(Client.number)).all()
        for n, (client_id, email, receipt_id) in enumerate(rows):
            document = store_notice_pdf(session, organisation_id=broker.id, legal_entity_id=entity_id,
                                        notice_number=1000 + n, pdf=f"%PDF-1.4 avis {n}".encode(), client_id=client_id,
                                        receipt_id=receipt_id).document
            session.add(Notice(organisation_id=broker.id, receipt_id=receipt_id, client_id=client_id,
                               legal_entity_id=entity_id, document_id=document.id, number=1000 + n,
                               workflow_id=f"avis-{broker.slug}-{n}", status="V", email=email,
                               due_date=date(2027, 1, 1), validated_at=start - timedelta(seconds=n)))
    order = [str(e) for _, e, _ in reversed(rows)]
    return broker, order


def _run(broker: Broker, limit: int = 200) -> RobotRun:
    return RobotRun(broker.id, limit, get_settings().task_queue)


def _sends(broker: Broker) -> list[NoticeSend]:
    with session_scope() as session:
        sends = list(session.scalars(select(NoticeSend).join(Notice, Notice.id == NoticeSend.notice_id)
                                     .where(Notice.organisation_id == broker.id).order_by(NoticeSend.id)))
        session.expunge_all()
        return sends


def _outcome_signals(broker: Broker) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(WorkflowSignal).where(
            WorkflowSignal.organisation_id == broker.id, WorkflowSignal.signal == SEND_OUTCOME)) or 0


async def test_a_round_sends_every_notice_once_in_order_and_a_5xx_is_ko_at_once(sink: SmtpSink) -> None:
    broker, order = _validated_notices(COUNT)
    sink.scripted_replies.append("550 5.1.1 Adresse inconnue")  # the first to go
    activities = NoticeMailActivities(get_settings())
    done = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker))
    assert (done.sent, done.failed, done.stopped) == (COUNT - 1, 1, "empty")
    assert done.error == "550 5.1.1 Adresse inconnue"
    assert [str(m["To"]) for m in sink.messages] == order[1:]  # validated order, each once, the refused one never
    assert all(m.get_content_type() == "multipart/mixed" for m in sink.messages)
    assert next(sink.messages[0].iter_attachments()).get_content() == f"%PDF-1.4 avis {COUNT - 2}".encode()
    sends = _sends(broker)
    assert len(sends) == COUNT and {s.tries for s in sends} == {1}
    by_mail = {s.email: s for s in sends}
    assert by_mail[order[0]].status == "KO" and by_mail[order[0]].reply == "550 5.1.1 Adresse inconnue"
    assert {by_mail[e].status for e in order[1:]} == {"OK"}
    finished = [f for e in order[1:] if (f := by_mail[e].finished_at) is not None]
    assert len(finished) == COUNT - 1 and finished == sorted(finished)  # the reply's time, in order
    with session_scope() as session:
        outbox = {r.recipients[0]: r for r in session.scalars(select(OutboxMessage).where(
            OutboxMessage.id.in_([s.outbox_id for s in sends])))}
        robot_row = session.get(RobotSettings, broker.id)
        assert robot_row is not None and robot_row.sent_today == COUNT - 1 and robot_row.state == "idle"
    assert outbox[order[0]].status == "ko" and {outbox[e].status for e in order[1:]} == {"sent"}
    assert {r.attempts for r in outbox.values()} == {1}
    assert _outcome_signals(broker) == COUNT  # each notice's workflow is told, once

    again = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker))
    assert (again.sent, again.failed, again.stopped) == (0, 0, "empty") and len(sink.messages) == COUNT - 1


async def test_a_4xx_stops_the_round_and_the_next_sends_what_it_had_claimed_first_once(sink: SmtpSink) -> None:
    broker, order = _validated_notices(COUNT)
    sink.scripted_replies.append("451 4.3.0 Réessayez plus tard")
    activities = NoticeMailActivities(get_settings())
    first = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker))
    assert (first.sent, first.failed, first.stopped) == (0, 0, "error_wait")
    assert first.error == "451 4.3.0 Réessayez plus tard" and sink.messages == []
    claimed = _sends(broker)  # the ones claimed ahead and never tried are given back: they can be blocked meanwhile
    assert [(s.email, s.status, s.tries) for s in claimed] == [(order[0], "sending", 1)]
    with session_scope() as session:
        assert session.get(RobotSettings, broker.id).state == "error_wait"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).where(Notice.organisation_id == broker.id,
                                                         Notice.claimed_at.is_not(None))) == 1

    second = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker))
    assert (second.sent, second.failed, second.stopped) == (COUNT, 0, "empty")
    assert [str(m["To"]) for m in sink.messages] == order  # the interrupted one first, each once
    sends = _sends(broker)
    assert len(sends) == COUNT and {s.status for s in sends} == {"OK"}
    assert sends[0].id == claimed[0].id and sends[0].tries == 2  # the same send, tried again
    assert _outcome_signals(broker) == COUNT


async def test_a_round_stops_at_its_limit_without_claiming_beyond_it(sink: SmtpSink) -> None:
    broker, order = _validated_notices(12)
    activities = NoticeMailActivities(get_settings())
    done = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker, limit=5))
    assert (done.sent, done.stopped) == (5, "limit")
    assert [str(m["To"]) for m in sink.messages] == order[:5]
    assert len(_sends(broker)) == 5  # nothing claimed past the limit: the rest can still be blocked


async def test_a_pdf_changed_since_its_edition_is_never_sent_and_the_others_go(sink: SmtpSink) -> None:
    broker, order = _validated_notices(4)
    with session_scope() as session:  # the table refuses any UPDATE: only someone with the database's keys could
        target = session.scalars(select(Notice).join(Client, Client.id == Notice.client_id)
                                 .where(Client.email == order[1], Notice.organisation_id == broker.id)).one()
        session.execute(text("ALTER TABLE notices.documents DISABLE TRIGGER documents_immutable"))
        session.execute(update(NoticeDocument).where(NoticeDocument.id == target.document_id)
                        .values(content=b"%PDF-1.4 autre chose"))
        session.execute(text("ALTER TABLE notices.documents ENABLE TRIGGER documents_immutable"))
    activities = NoticeMailActivities(get_settings())
    done = await ActivityEnvironment().run(activities.send_validated_notices, _run(broker))
    assert (done.sent, done.stopped) == (3, "empty")
    assert [str(m["To"]) for m in sink.messages] == [order[0], order[2], order[3]]
    refused = next(s for s in _sends(broker) if s.email == order[1])
    assert refused.status == "KO" and refused.reply == robot.CORRUPTED and refused.outbox_id is None
    assert _outcome_signals(broker) == 4  # its workflow makes it KO with the reason in «Observations»


async def test_the_queue_says_when_it_shows_only_the_first_notices(notices_http: httpx.AsyncClient,  # noqa: F811
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    broker, _order = _validated_notices(4)
    monkeypatch.setattr(queue, "LIST_LIMIT", 3)
    await login(notices_http, broker.manager)
    page = page_text(await notices_http.get("/avis"))
    assert "Liste des documents (3)" in page
    assert "Les 3 premiers avis sont affichés sur 4 trouvés : précisez les critères de recherche" in page
    monkeypatch.setattr(queue, "LIST_LIMIT", 4)
    page = page_text(await notices_http.get("/avis"))
    assert "Liste des documents (4)" in page and "premiers avis sont affichés" not in page
