"""The notices end to end on the time-skipping server, with the project's workers, the signal relay, PostgreSQL and
the SMTP catcher: criteria → PDFs → «Oui» → E → «Valider» → the robot's mail with its PDF → OK; «Non» keeps
nothing; a block before the robot claims a notice means it never leaves; 5xx → KO with the reply, then «Renvoyer»;
4xx waits and retries, then KO; «Suspendre» / «Reprendre»."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.db import session_scope
from core.models import Organisation, User
from core.settings import Settings, get_settings
from core.signals import SignalRelay
from services.notices.models import Notice, NoticeDocument, NoticeRun, NoticeSend, Receipt, RobotSettings, RunItem
from services.notices.service import queue, records, robot, runs
from tests.support.notices import Broker, client_item, contract_item, make_broker, pdf_text, receipt_item, save
from tests.support.smtp import SmtpSink, body_text

TODAY = date(2026, 12, 3)


@pytest.fixture(autouse=True)
async def _stop_workflows(time_env: WorkflowEnvironment) -> AsyncIterator[None]:
    """After each test, end the workflows it made: a robot or a notice left waiting on this test's task queues (whose
    workers are gone) would hold the time-skipping server's clock for the tests that follow."""
    yield
    with session_scope() as session:
        ids = [*session.scalars(select(Notice.workflow_id)),
               *(f"avis-run-{slug}-{run_id}" for slug, run_id in session.execute(
                   select(Organisation.slug, NoticeRun.id)
                   .join(NoticeRun, NoticeRun.organisation_id == Organisation.id))),
               *(f"avis-robot-{slug}" for slug in session.scalars(select(Organisation.slug)
                                                                  .where(Organisation.kind == "broker")))]
    for workflow_id in ids:
        with contextlib.suppress(RPCError):
            await time_env.client.get_workflow_handle(workflow_id).terminate("fin du test")


def _settings(time_worker: tuple[Client, str, str]) -> Settings:
    _client, task_queue, mail_queue = time_worker
    return get_settings().model_copy(update={"task_queue": task_queue, "mail_task_queue": mail_queue})


def _broker(due: date, manual: bool = True) -> Broker:
    """Five clients: three to notice, one without e-mail, one with «AE par mail» unticked; receipts due on `due`
    (the time-skipping server's clock moves ahead with every test: a notice whose due date is long past ends at
    once, as it should)."""
    broker = make_broker()
    clients = [client_item(f"D{n}") for n in (1, 2, 3)]
    clients += [client_item("D4", email=None), client_item("D5", notice_by_email=False)]
    save(broker, records.CLIENTS, *clients)
    save(broker, records.CONTRACTS, *(contract_item(f"C{n}", f"D{n}") for n in range(1, 6)))
    save(broker, records.RECEIPTS, *(receipt_item(f"Q{n}", f"C{n}", period_start=due,
                                                                    period_end=due + timedelta(days=364))
                               for n in range(1, 6)))
    with session_scope() as session:
        session.execute(update(runs.LegalEntity).where(runs.LegalEntity.organisation_id == broker.id)
                        .values(manual_confirmation=manual))
        robot.robot_settings(session, broker.id)
        session.execute(update(RobotSettings).where(RobotSettings.organisation_id == broker.id)
                        .values(pause_ms=0, reply_to=f"gestion@{broker.manager.split('@')[1]}",
                                bcc=[f"archives@{broker.manager.split('@')[1]}"]))
    return broker


def _user(email: str) -> User:
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        session.expunge(user)
        return user


def _criteria(broker: Broker, **values: object) -> runs.Criteria:
    raw = runs.defaults(TODAY) | {"entity_id": str(broker.entities["SIEGE"]), "debit_to": "12/2099",
                                      "effect_to": "31/12/2099"} | values
    with session_scope() as session:
        checked = runs.check_form(session, broker.id, raw)
    assert checked.criteria is not None, checked.errors
    return checked.criteria


async def _settle(relay: SignalRelay, condition: Callable[[], bool], what: str, env: WorkflowEnvironment | None = None,
                  rounds: int = 600) -> None:
    """Deliver what the services and activities queue until `condition` holds (the work is real I/O in the workers;
    with `env`, business time passes on the time-skipping server between rounds)."""
    for _ in range(rounds):
        await relay.deliver_pending()
        if condition():
            return
        if env is not None:
            await env.sleep(timedelta(seconds=15))
        else:
            await asyncio.sleep(0.05)  # real work in the workers (see tests/support/waiting.py)
    raise AssertionError(f"jamais arrivé : {what}")


def _run(run_id: int) -> NoticeRun:
    with session_scope() as session:
        run = session.get(NoticeRun, run_id)
        assert run is not None
        session.expunge(run)
        return run


def _notices(broker: Broker) -> dict[str, Notice]:
    """The broker's live notices by dossier."""
    with session_scope() as session:
        rows = session.execute(select(Notice, runs.Client.number).join(runs.Client, runs.Client.id == Notice.client_id)
                               .where(Notice.organisation_id == broker.id, Notice.status != "A")).all()
        session.expunge_all()
        return {number: notice for notice, number in rows}


async def _due(env: WorkflowEnvironment) -> date:
    return (await env.get_current_time()).date() + timedelta(days=40)


async def _start_run(broker: Broker, settings: Settings, relay: SignalRelay, **criteria: object) -> NoticeRun:
    with session_scope() as session:
        run = runs.start_run(session, settings, user=_user(broker.manager), criteria=_criteria(broker, **criteria),
                             workstation="127.0.0.1")
        session.flush()
        run_id = run.id
    await _settle(relay, lambda: _run(run_id).status == "awaiting_answer", "PDF générés")
    return _run(run_id)


async def _answer(broker: Broker, settings: Settings, relay: SignalRelay, run: NoticeRun, confirmed: bool) -> None:
    with session_scope() as session:
        locked = session.get(NoticeRun, run.id)
        assert locked is not None
        runs.answer_run(session, settings, user=_user(broker.manager), run=locked, confirmed=confirmed)
    final = "confirmed" if confirmed else "declined"
    await _settle(relay, lambda: _run(run.id).status == final, final)


def _act(broker: Broker, settings: Settings, notices: list[Notice], action: str, reason: str = "") -> list[str | None]:
    with session_scope() as session:
        outcomes = queue.request_action(session, settings, user=_user(broker.manager),
                                        notice_ids=[n.id for n in notices], action=action, reason=reason)
    return [o.refused for o in outcomes]


async def test_run_oui_valider_robot_sends_the_pdf_and_a_block_never_leaves(
        time_worker: tuple[Client, str, str], time_relay: SignalRelay, sink: SmtpSink,
        time_env: WorkflowEnvironment) -> None:
    settings, broker = _settings(time_worker), _broker(await _due(time_env))
    run = await _start_run(broker, settings, time_relay)
    assert (run.planned, run.excluded, run.rendered) == (3, 2, 3)
    with session_scope() as session:
        items = {i.client_id: i for i in session.scalars(select(RunItem).where(RunItem.run_id == run.id))}
        reasons = sorted(i.excluded_reason or "" for i in items.values())
        numbers = sorted(i.notice_number for i in items.values() if i.notice_number)
        first_pdf = next(i.pdf for i in items.values() if i.pdf)
    assert reasons == ["", "", "", runs.NO_EMAIL, runs.NOT_BY_EMAIL]
    assert numbers == [197, 198, 199]
    assert first_pdf is not None and "Avis d'échéance n°197" in pdf_text(first_pdf)
    await _answer(broker, settings, time_relay, run, confirmed=True)
    notices = _notices(broker)
    assert {k: n.status for k, n in notices.items()} == {"D1": "E", "D2": "E", "D3": "E"}
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Receipt.organisation_id == broker.id,
                                                          Receipt.edition_date.is_not(None))) == 3
        assert session.scalar(select(func.count()).where(RunItem.run_id == run.id, RunItem.pdf.is_not(None))) == 0

    assert _act(broker, settings, [notices["D3"]], "block", "Adresse e-mail erronée") == [None]
    assert _act(broker, settings, [notices["D3"]], "validate") == ["une action est déjà en cours sur cet avis"]
    assert _act(broker, settings, [notices["D1"], notices["D2"]], "validate") == [None, None]

    def sent() -> bool:
        return {n.status for k, n in _notices(broker).items() if k != "D3"} == {"OK"}
    await _settle(time_relay, sent, "D1 et D2 envoyés")
    notices = _notices(broker)
    assert notices["D3"].status == "B" and notices["D3"].observations == "Bloqué : Adresse e-mail erronée"
    assert notices["D1"].sent_at is not None and notices["D1"].send_count == 1
    mails = {str(m["To"]): m for m in sink.messages}
    assert set(mails) == {"d1@client.example", "d2@client.example"}  # D3, blocked first, never left
    assert len(sink.messages) == 2  # each once, though the robot claims the next one while sending
    mail = mails["d1@client.example"]
    assert mail["Subject"] == "Avis d'échéance pour M. Nom D1 Jean"
    assert mail["Reply-To"] == f"gestion@{broker.manager.split('@')[1]}" and mail["Bcc"] is None
    attachment = next(mail.iter_attachments())
    with session_scope() as session:
        stored = session.get(NoticeDocument, notices["D1"].document_id)
        assert stored is not None
        send = session.scalars(select(NoticeSend).where(NoticeSend.notice_id == notices["D1"].id)).one()
    assert attachment.get_filename() == stored.filename and attachment.get_content() == stored.content
    assert send.email == "d1@client.example" and send.status == "OK"
    assert "Avis d'échéance n°" in pdf_text(stored.content)
    with session_scope() as session:
        assert session.get(RobotSettings, broker.id).sent_today == 2  # type: ignore[union-attr]


async def test_non_keeps_nothing_and_burns_the_numbers(time_worker: tuple[Client, str, str],
                                                       time_relay: SignalRelay, time_env: WorkflowEnvironment) -> None:
    settings, broker = _settings(time_worker), _broker(await _due(time_env))
    run = await _start_run(broker, settings, time_relay)
    await _answer(broker, settings, time_relay, run, confirmed=False)
    assert _notices(broker) == {}
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Receipt.organisation_id == broker.id,
                                                          Receipt.edition_date.is_not(None))) == 0
        assert session.scalar(select(runs.LegalEntity.next_notice_no).where(
            runs.LegalEntity.id == broker.entities["SIEGE"])) == 200
    again = await _start_run(broker, settings, time_relay)
    with session_scope() as session:
        numbers = sorted(n for n in session.scalars(select(RunItem.notice_number).where(RunItem.run_id == again.id))
                         if n)
    assert numbers == [200, 201, 202]


async def test_automatic_validation_5xx_ko_then_renvoyer(time_worker: tuple[Client, str, str],
                                                          time_relay: SignalRelay, sink: SmtpSink,
                                                          time_env: WorkflowEnvironment) -> None:
    settings, broker = _settings(time_worker), _broker(await _due(time_env), manual=False)
    sink.scripted_replies.append("550 5.1.1 Adresse inconnue")
    run = await _start_run(broker, settings, time_relay, dossier_from="D1", dossier_to="D1")
    await _answer(broker, settings, time_relay, run, confirmed=True)
    await _settle(time_relay, lambda: _notices(broker)["D1"].status == "KO", "KO")
    notice = _notices(broker)["D1"]
    assert notice.observations is not None and "550 5.1.1 Adresse inconnue" in notice.observations
    assert sink.messages == []
    assert _act(broker, settings, [notice], "resend") == [None]
    await _settle(time_relay, lambda: _notices(broker)["D1"].status == "OK", "renvoyé")
    with session_scope() as session:
        sends = list(session.scalars(select(NoticeSend).where(NoticeSend.notice_id == notice.id)
                                     .order_by(NoticeSend.attempt)))
    assert [(s.attempt, s.status) for s in sends] == [(1, "KO"), (2, "OK")]
    assert len(sink.to("d1@client.example")) == 1


async def test_4xx_waits_then_ko_and_pause_resume(time_worker: tuple[Client, str, str], time_relay: SignalRelay,
                                                  time_env: WorkflowEnvironment, sink: SmtpSink) -> None:
    settings, broker = _settings(time_worker), _broker(await _due(time_env), manual=False)
    with session_scope() as session:
        robot.set_paused(session, settings, user=_user(broker.admin), paused=True)
    run = await _start_run(broker, settings, time_relay)
    await _answer(broker, settings, time_relay, run, confirmed=True)
    await _settle(time_relay, lambda: _robot(broker).state == "paused", "en pause", env=time_env, rounds=30)
    assert {n.status for n in _notices(broker).values()} == {"V"} and sink.messages == []
    sink.scripted_replies.extend(["451 4.3.0 Réessayez plus tard"] * 3)  # max_attempts = 3: D1 → KO
    with session_scope() as session:
        robot.set_paused(session, settings, user=_user(broker.admin), paused=False)
    await _settle(time_relay, lambda: _robot(broker).state == "error_wait", "attente après erreur")
    assert _robot(broker).last_error == "451 4.3.0 Réessayez plus tard"
    await _settle(time_relay, lambda: {n.status for n in _notices(broker).values()} == {"KO", "OK"},
                  "D1 KO après 3 essais, les autres envoyés", env=time_env, rounds=60)
    statuses = {k: n.status for k, n in _notices(broker).items()}
    assert statuses == {"D1": "KO", "D2": "OK", "D3": "OK"}
    assert sorted(str(m["To"]) for m in sink.messages) == ["d2@client.example", "d3@client.example"]
    assert "après 3 tentative(s)" in (_notices(broker)["D1"].observations or "")


async def _round_over(env: WorkflowEnvironment, broker: Broker) -> None:
    """Until the robot's workflow has no activity under way (a round that saw «Suspendre» still finishes)."""
    handle = env.client.get_workflow_handle(f"avis-robot-{broker.slug}")
    for _ in range(200):
        if not (await handle.describe()).raw_description.pending_activities:
            return
        await asyncio.sleep(0.05)  # real work in the mail worker (see tests/support/waiting.py)
    raise AssertionError("jamais arrivé : fin de la tournée de l'automate")


def _robot(broker: Broker) -> RobotSettings:
    with session_scope() as session:
        found = session.get(RobotSettings, broker.id)
        assert found is not None
        session.expunge(found)
        return found


@pytest.mark.parametrize(("field", "value", "message"), [
    ("effect_to", "32/01/2027", "Date invalide « 32/01/2027 » : attendu JJ/MM/AAAA."),
    ("cdp", "X", "Filtre d'impression : lettres C, D ou P seulement (vide pour tout imprimer)."),
    ("fixed_fee", "-1", "Montant des frais fixes invalide « -1 »"),
])
def test_bad_criteria_are_refused_with_the_field(field: str, value: str, message: str) -> None:
    broker = make_broker()
    raw = runs.defaults(TODAY) | {"entity_id": str(broker.entities["SIEGE"]), field: value}
    with session_scope() as session:
        checked = runs.check_form(session, broker.id, raw)
    assert checked.criteria is None and message in checked.errors[field]


async def test_the_account_manager_is_alerted_when_a_notice_is_still_e_near_its_due_date(
        time_worker: tuple[Client, str, str], time_relay: SignalRelay, time_env: WorkflowEnvironment,
        sink: SmtpSink) -> None:
    settings = _settings(time_worker)
    due = (await time_env.get_current_time()).date() + timedelta(days=12)
    broker = _broker(due)
    save(broker, records.CLIENTS, client_item("D1", account_manager="Claire Dubois",
                                               account_manager_email="claire@cabinet.example"))
    run = await _start_run(broker, settings, time_relay, dossier_from="D1", dossier_to="D2")
    await _answer(broker, settings, time_relay, run, confirmed=True)
    notices = _notices(broker)
    assert _act(broker, settings, [notices["D2"]], "validate") == [None]  # D2 leaves; D1 stays E
    await _settle(time_relay, lambda: _notices(broker)["D2"].status == "OK", "D2 envoyé")
    assert not sink.to("claire@cabinet.example")
    with session_scope() as session:  # a paused robot sets no timer: six days pass in one step, not 50,000 polls
        robot.set_paused(session, settings, user=_user(broker.admin), paused=True)
    await _settle(time_relay, lambda: _robot(broker).state == "paused", "en pause")
    await _round_over(time_env, broker)  # the state is written before the round returns: let it return first
    await time_env.sleep(timedelta(days=6))  # 12 days before the due date minus the 7 of the alert, and one more
    await _settle(time_relay, lambda: bool(sink.to("claire@cabinet.example")), "alerte", env=time_env, rounds=20)
    alert = sink.to("claire@cabinet.example")
    assert len(alert) == 1 and f"non envoyé — échéance du {due:%d/%m/%Y} (D1 Jean Nom D1)" in alert[0]["Subject"]
    assert "« En attente de validation (E) »" in body_text(alert[0])
    with session_scope() as session:
        events = session.scalars(select(runs.NoticeEvent.action).where(
            runs.NoticeEvent.notice_id == notices["D1"].id)).all()
    assert "alerted" in events


def test_numbers_are_never_reused_even_by_a_session_that_read_the_counter_before_another_run() -> None:
    broker = _broker(date(2030, 1, 1))
    settings = get_settings()
    with session_scope() as first:
        early = runs.check_form(first, broker.id, runs.defaults(TODAY) | {
            "entity_id": str(broker.entities["SIEGE"]), "debit_to": "12/2099", "effect_to": "31/12/2099"})
        assert early.criteria is not None  # this session has the entity, counter at 197, in its identity map
        with session_scope() as other:
            runs.start_run(other, settings, user=_user(broker.manager), criteria=_criteria(broker), workstation="a")
        run = runs.start_run(first, settings, user=_user(broker.manager), criteria=early.criteria, workstation="b")
        first.flush()
        numbers = sorted(n for n in first.scalars(select(RunItem.notice_number).where(RunItem.run_id == run.id)) if n)
    assert numbers == [200, 201, 202]


async def test_a_send_claimed_before_a_crash_is_sent_once_first_when_the_robot_comes_back(
        time_worker: tuple[Client, str, str], time_relay: SignalRelay, time_env: WorkflowEnvironment,
        sink: SmtpSink) -> None:
    settings, broker = _settings(time_worker), _broker(await _due(time_env))
    with session_scope() as session:
        robot.set_paused(session, settings, user=_user(broker.admin), paused=True)
    run = await _start_run(broker, settings, time_relay, dossier_from="D1", dossier_to="D2")
    await _answer(broker, settings, time_relay, run, confirmed=True)
    notices = _notices(broker)
    assert _act(broker, settings, [notices["D2"], notices["D1"]], "validate") == [None, None]
    await _settle(time_relay, lambda: {n.status for n in _notices(broker).values()} == {"V"}, "validés")
    with session_scope() as session:  # a round claimed one and wrote its mail, then its worker died before SMTP
        claimed = robot.next_send(session, settings, broker.id)
    assert claimed is not None
    taken = next(n for n in _notices(broker).values() if n.id == claimed.notice_id)
    other = next(n for n in _notices(broker).values() if n.id != claimed.notice_id)
    assert _act(broker, settings, [taken], "block", "trop tard") == [
        "envoi en cours : l'automate a déjà pris cet avis"]
    with session_scope() as session:
        robot.set_paused(session, settings, user=_user(broker.admin), paused=False)
    await _settle(time_relay, lambda: {n.status for n in _notices(broker).values()} == {"OK"}, "envoyés")
    assert sorted(str(m["To"]) for m in sink.messages) == ["d1@client.example", "d2@client.example"]
    with session_scope() as session:
        sends = session.execute(select(NoticeSend.notice_id, NoticeSend.attempt, NoticeSend.id).join(
            Notice, Notice.id == NoticeSend.notice_id).where(Notice.organisation_id == broker.id)
            .order_by(NoticeSend.finished_at)).all()
    assert [(s.notice_id, s.attempt) for s in sends] == [(claimed.notice_id, 1), (other.id, 1)]
    assert sends[0].id == claimed.send_id  # the unfinished send itself, first, not a new one
