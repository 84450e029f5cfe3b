"""Chaos bench: nothing lost, nothing sent twice, while the platform's parts crash under real load.

    .venv/bin/python -m bench.chaos            # full: 2,000 + 2,000 recipients, 500 clicks, 500 notices, five faults
    .venv/bin/python -m bench.chaos --short    # a few hundred recipients, 80 notices, one mail-worker crash

The script starts the real stack itself: embedded PostgreSQL, `temporal server start-dev` on its --db-filename,
the worker as deployed (two processes: `--only main` and `--only mail`), the campaigns, removals and notices
services (uvicorn), and an SMTP sink that records every message it receives by Message-ID (`bench.chaos_sink`)
behind a TCP proxy the bench can switch off (`bench.chaos_proxy`). Every process is supervised by the dev stack's
own `Stack` (`core/devstack/run.py`): a killed one is restarted with its backoff, as under `make run`.

Four flows run at once, driven over HTTP as people do: an e-mail campaign with pacing on (SMTP_MAX_PER_SECOND,
several SMTP connections), a Workflow campaign (Mail then Attente 5 days), deposers clicking the "Accepter"
links of the mails in the sink (GET, then POST), and a broker's notices run («Mail», «Oui», «Sélection» +
«Valider») whose notices the mail robot then sends with their PDFs, no pause between mails
(`bench.chaos_notices`). Meanwhile the bench kills the mail worker (SIGKILL) twice, the main worker once, restarts
the Temporal dev server on its db file, and makes SMTP unreachable for 10 s; each fault waits for the previous
one's recovery. It prints, per flow: recipients in exactly one final state (goal 100 %), duplicates received by
the sink beside their bound, the time to recover after each fault, and what is stuck (goal 0), and exits non-zero
when a goal is missed.
"""

import argparse
import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.chaos_check import (
    FlowReport,
    check_campaign,
    check_notices,
    check_removals,
    clicked_mandates,
    leftovers,
    notices_settled,
)
from bench.chaos_flows import (
    EMAIL_DOMAIN,
    REMOVAL_DOMAINS,
    WORKFLOW_DOMAIN,
    Clicks,
    Fleet,
    accept_links,
    click_all,
    confirm_request,
    create_and_launch,
    login,
    seed_fleet,
    seed_requester,
)
from bench.chaos_notices import NOTICES_DOMAIN, Broker, drive_notices, seed_broker
from bench.chaos_stack import LogWatch, start_stack, temporal_up, until, wait_healthy
from bench.chaos_watch import Fault, Flow, SinkLog
from core.devstack.run import Stack

MAIL_FAULTS = ("mail-kill", "smtp-cut")  # the faults that can cut a message between SMTP's reply and its record


@dataclass
class Plan:
    recipients: int
    drivers: int
    clicks: int
    deposers: int
    notices: int  # the broker's clients, one notice each
    smtp_rate: float  # SMTP_MAX_PER_SECOND
    connections: int  # SMTP_CONNECTIONS
    click_rate: float
    faults: list[tuple[str, str, str, float]]  # (label, kind, flow whose progress triggers it, at fraction)
    deadline: float  # seconds for the whole run, after which whatever is unfinished is reported as such

    @property
    def vehicles(self) -> int:
        return self.clicks + max(2, self.clicks // 10)  # a few vehicles nobody clicks: they must stay Prévenu


# The notices robot sends fast once its notices are validated (no pause): the SMTP cut and the second mail-worker
# kill follow its progress, the other faults come after (the main worker renders the PDFs: it is killed last).
FULL = Plan(2000, 2000, 500, 10, 500, smtp_rate=20, connections=4, click_rate=2.0, deadline=1200, faults=[
    ("mail worker SIGKILL #1", "mail-kill", "email", 0.15),
    ("SMTP unreachable 10 s", "smtp-cut", "notices", 0.15),
    ("mail worker SIGKILL #2", "mail-kill", "notices", 0.50),
    ("Temporal dev server restart", "temporal-restart", "removals", 0.25),
    ("main worker SIGKILL", "main-kill", "workflow", 0.55),
])
# Short: the campaign paced slower than the full run's so that it is still sending when the robot is.
SHORT = Plan(300, 200, 40, 4, 80, smtp_rate=10, connections=4, click_rate=4.0, deadline=360, faults=[
    ("mail worker SIGKILL", "mail-kill", "notices", 0.3),
])


def in_flight_bound(connections: int) -> tuple[int, str]:
    """What the bulk sender may re-send after one fault, per batch in flight: one message per connection plus the
    outcomes not recorded yet, as `activities/mail_batch.py` declares it."""
    from activities import mail_batch

    bound = getattr(mail_batch, "unrecorded_bound", None)
    group = getattr(mail_batch, "GROUP_LIMIT", None)
    if callable(bound):
        return int(bound(connections)), (f"activities/mail_batch.py unrecorded_bound({connections}) = "
                                         f"{connections} connections + GROUP_LIMIT {group}")
    return connections + 16, (f"{connections} connections + 16 (assumed: activities/mail_batch.py declares no "
                              f"bound of its unrecorded outcomes)")


def robot_bound() -> tuple[int, str]:
    """What the notices robot may re-send after one fault: the mail in flight plus the outcomes accepted and not
    recorded yet, as `services/notices/service/robot.py` declares it."""
    from activities.recorder import GROUP_LIMIT

    return 1 + GROUP_LIMIT, f"1 mail in flight + activities/recorder.py GROUP_LIMIT {GROUP_LIMIT}"


@dataclass
class Run:
    plan: Plan
    tmp: Path
    stack: Stack
    client: Client
    flows: dict[str, Flow]
    sink: SinkLog
    broker: Broker
    clicks: Clicks = field(default_factory=Clicks)
    faults: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    workers: dict[str, LogWatch] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # the Accepter links the deposers click
    notices_run: int | None = None
    notices_validated: float | None = None  # when «Valider» was answered

    def tick(self) -> None:
        self.stack.supervise()
        self.sink.read()
        for watch in self.workers.values():
            watch.read()

    def clock(self, moment: float | None) -> str:
        return "--:--" if moment is None else time.strftime("%M:%S", time.gmtime(moment - self.started))


async def inject(run: Run, fault: Fault) -> None:
    """Fire `fault`, then wait (bounded) until the faulted part is back and its flows move again."""
    fault.at = time.time()
    fault.under_way = [name for name, flow in run.flows.items() if flow.under_way() and flow.received]
    print(f"{run.clock(fault.at)} !! {fault.name} (under way: {', '.join(fault.under_way) or 'nothing'})", flush=True)
    if fault.kind in ("mail-kill", "main-kill"):
        name = "mail-worker" if fault.kind == "mail-kill" else "main-worker"
        watch = run.workers[name]
        before = watch.count
        os.kill(run.stack.child(name).proc.pid, signal.SIGKILL)
        if await until(lambda: watch.count > before, seconds=120, what=f"{name} to start again"):
            fault.back = time.time()
    elif fault.kind == "temporal-restart":
        child = run.stack.child("temporal")
        before = child.restarts
        os.kill(child.proc.pid, signal.SIGTERM)
        if await until(lambda: child.restarts > before, seconds=60, what="Temporal to be restarted"):
            deadline = time.monotonic() + 120
            while not await temporal_up(run.client) and time.monotonic() < deadline:  # noqa: ASYNC110 (no event)
                await asyncio.sleep(0.2)
            fault.back = time.time() if await temporal_up(run.client) else None
    elif fault.kind == "smtp-cut":
        proxy = run.stack.child("smtp-proxy").proc.pid
        os.kill(proxy, signal.SIGUSR1)
        await asyncio.sleep(10)  # the outage itself: its length is the fault, not a wait for a result
        os.kill(proxy, signal.SIGUSR2)
        fault.back = time.time()
    await until(lambda: fault.recovered(run.flows, time.time()), seconds=300, what=f"recovery from {fault.name}")
    took = fault.recovery()
    print(f"{run.clock(time.time())}    {fault.name}: back after {fault.back - fault.at:.1f} s, flows moving again "
          f"after {took:.1f} s" if fault.back and took is not None else f"    {fault.name}: NOT recovered", flush=True)


async def fault_plan(run: Run) -> None:
    """The plan's faults one after the other, each when its flow reached its fraction (or finished) and the
    previous one has recovered."""
    for label, kind, flow, fraction in run.plan.faults:
        def ready(flow: str = flow, fraction: float = fraction) -> bool:
            return run.flows[flow].fraction() >= fraction or run.flows[flow].done()

        fault = Fault(label, kind, ready)
        run.faults.append(fault)
        await until(fault.ready, seconds=run.plan.deadline, what=f"the moment of {label}")
        await inject(run, fault)


async def ticker(run: Run) -> None:
    while True:
        run.tick()
        await asyncio.sleep(0.2)


async def drive(run: Run, urls: dict[str, str], email: Fleet, workflow: Fleet, requester: str,
                request_file: bytes) -> dict[str, int]:
    """What people do: the requester's request, both launches, then the deposers' clicks. Returns the ids."""
    plan = run.plan
    async with httpx.AsyncClient(base_url=urls["removals"], timeout=60) as http:
        await login(http, requester)
        await confirm_request(http, request_file)
    run.flows["removals"].started = time.time()
    ids: dict[str, int] = {"request": _last_request_id()}
    for name, fleet in (("email", email), ("workflow", workflow)):
        async with httpx.AsyncClient(base_url=urls["campaigns"], timeout=60) as http:
            await login(http, fleet.manager)
            ids[name] = await create_and_launch(http, fleet, f"Chaos {name}")
        run.flows[name].started = time.time()
        print(f"{run.clock(time.time())} {name} campaign {ids[name]} launched", flush=True)
    await until(lambda: len(run.sink.link_texts) >= plan.deposers, seconds=300, what="the deposers' mails")
    links = accept_links(run.sink.link_texts)
    random.Random(7).shuffle(links)
    run.links = links[:plan.clicks]
    print(f"{run.clock(time.time())} deposers start clicking {len(run.links)} of {len(links)} Accepter links "
          f"({plan.click_rate:g}/s)", flush=True)
    await click_all(urls["removals"], run.links, run.clicks, rate=plan.click_rate, people=4)
    print(f"{run.clock(time.time())} clicks done: {len(run.clicks.done)} answered, {len(run.clicks.failed)} failed",
          flush=True)
    return ids


def _last_request_id() -> int:
    from sqlalchemy import func, select

    from core.db import session_scope
    from services.removals.models import RemovalRequest

    with session_scope() as session:
        found = session.scalar(select(func.max(RemovalRequest.id)))
        assert found is not None, "no removal request recorded"
        return int(found)


async def run_notices(run: Run, url: str) -> None:
    """The broker's people, from the first second (the PDFs take a while): the run's id once validated."""
    run.flows["notices"].started = time.time()
    run.notices_run, run.notices_validated = await drive_notices(
        url, run.broker, run.plan.notices, seconds=run.plan.deadline,
        say=lambda line: print(f"{run.clock(time.time())} {line}", flush=True))


def _settled(run: Run, ids: dict[str, int]) -> bool:
    from core.db import session_scope
    from services.campaigns.models import Campaign

    with session_scope() as session:
        statuses = [session.get(Campaign, ids[name]) for name in ("email", "workflow")]
        if not all(c is not None and c.status == "sent" for c in statuses):
            return False
    return notices_settled(run.broker.organisation_id, run.notices_run, run.plan.notices) and not leftovers()


async def settle(run: Run, ids: dict[str, int], seconds: float) -> None:
    """Until both campaigns are ENVOYE, every notice OK or KO with nothing claimed, and nothing waits in the
    outboxes, and the sink has been quiet for 5 s (a late re-send would still be counted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        last = max((t for f in run.flows.values() for t in f.arrivals[-1:]), default=0.0)
        if time.time() - last >= 5 and await asyncio.to_thread(_settled, run, ids):
            return
        await asyncio.sleep(0.5)
    print("   (the run did not settle before its deadline)", flush=True)


async def verdict(run: Run, ids: dict[str, int], workflow: Fleet) -> list[FlowReport]:
    seen = run.sink.seen
    clicked = clicked_mandates(run.clicks.done)
    failed = clicked_mandates(url.split(": ", 1)[0] for url in run.clicks.failed)
    return [
        await check_campaign(run.client, name="e-mail campaign", campaign_id=ids["email"],
                             expected=run.plan.recipients, seen=seen),
        await check_campaign(run.client, name="workflow campaign", campaign_id=ids["workflow"],
                             expected=run.plan.drivers, seen=seen, wait_label=workflow.wait_label),
        await check_removals(run.client, request_id=ids["request"], clicked=clicked, failed=failed, seen=seen),
        await check_notices(run.client, organisation_id=run.broker.organisation_id, slug=run.broker.slug,
                            run_id=run.notices_run, validated=run.notices_validated, expected=run.plan.notices,
                            seen=seen,
                            by_recipient=run.sink.by_recipient, domain=NOTICES_DOMAIN),
    ]


def report(run: Run, reports: list[FlowReport], elapsed: float) -> list[str]:
    """Print the figures; return the goals missed."""
    plan, missed = run.plan, []
    bound, source = in_flight_bound(plan.connections)
    robot, robot_source = robot_bound()
    mail_faults = sum(1 for f in run.faults if f.kind in MAIL_FAULTS and f.at is not None)
    print(f"\n== Chaos bench ({'short' if plan is SHORT else 'full'}): {plan.recipients} e-mail recipients, "
          f"{plan.drivers} drivers, {len(run.links)} clicks, {plan.notices} notices; "
          f"SMTP_MAX_PER_SECOND={plan.smtp_rate:g}, SMTP_CONNECTIONS={plan.connections}; {elapsed:.0f} s")
    print("faults:")
    for n, fault in enumerate(run.faults, 1):
        took = fault.recovery()
        pauses = ", ".join(f"{name} paused {p[1] - fault.at:.1f} s" if p and p[1] and fault.at else
                           f"{name} not interrupted" if p is None else f"{name} still stopped"
                           for name, p in fault.pauses.items())
        back = f"{fault.back - fault.at:.1f} s" if fault.back and fault.at else "never"
        print(f"  {n}. {fault.name} at {run.clock(fault.at)}: back after {back}; recovered after "
              f"{f'{took:.1f} s' if took is not None else 'NEVER'} ({pauses or 'no flow under way'})")
        if fault.at is None:
            missed.append(f"{fault.name} never fired")
        elif took is None:
            missed.append(f"no recovery after {fault.name}")
        elif not fault.under_way:
            missed.append(f"{fault.name} fired when no flow was under way")
    print(f"in-flight bound per mail fault and flow: {bound} ({source}); notices robot: {robot} ({robot_source}); "
          f"mail faults (kills, SMTP cut): {mail_faults}")
    print("flows:")
    names = {"e-mail campaign": "email", "workflow campaign": "workflow", "removal clicks": "removals",
             "notices robot": "notices"}
    stuck_total = 0
    for r in reports:
        flow = run.flows[names[r.name]]
        per_fault = robot if r.name == "notices robot" else bound
        allowed = per_fault * mail_faults
        duplicates = flow.duplicates if r.duplicates is None else r.duplicates
        print(f"  {r.name}: {r.final}/{r.total} {r.unit} in exactly one final state ({r.percent:.1f} %, goal 100 %);"
              f" duplicates received {duplicates} (bound {allowed} = {per_fault} x {mail_faults}); "
              f"stuck {len(r.stuck)} (goal 0)")
        for what, count in sorted(r.details.items(), key=lambda kv: -kv[1]):
            print(f"      {count:>5}  {what}")
        for line in [*r.notes, *r.stuck]:
            print(f"      {line}")
        stuck_total += len(r.stuck)
        if r.final != r.total:
            missed.append(f"{r.name}: {r.total - r.final} {r.unit} not in exactly one final state")
        if duplicates > allowed:
            missed.append(f"{r.name}: {duplicates} duplicates > bound {allowed}")
        if r.stuck:
            missed.append(f"{r.name}: {len(r.stuck)} stuck")
    rest = leftovers()
    if run.sink.other:
        rest.append(f"{run.sink.other} message(s) in the sink belong to no flow")
    if run.clicks.failed:
        rest.append(f"{len(run.clicks.failed)} click(s) failed, e.g. {run.clicks.failed[0]}")
    for line in rest:
        print(f"  {line}")
    missed += rest
    times = sorted(run.clicks.seconds)
    if times:
        print(f"clicks (GET + POST): median {times[len(times) // 2] * 1000:.0f} ms, "
              f"max {times[-1] * 1000:.0f} ms")
    print(f"stuck in total: {stuck_total + len(rest)} (goal 0)")
    print("result: every goal met" if not missed else "result: GOALS MISSED\n  - " + "\n  - ".join(missed),
          flush=True)
    return missed


async def main(plan: Plan, keep: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="relais-chaos-"))
    print(f"chaos bench: state and logs under {tmp}", flush=True)
    began = time.monotonic()
    stack, client, urls = await start_stack(tmp, smtp_rate=plan.smtp_rate, connections=plan.connections)
    try:
        email = seed_fleet("chaos-mail", plan.recipients, EMAIL_DOMAIN, workflow=False)
        workflow = seed_fleet("chaos-wf", plan.drivers, WORKFLOW_DOMAIN, workflow=True)
        requester, request_file = seed_requester(plan.vehicles, plan.deposers)
        broker = seed_broker(plan.notices, NOTICES_DOMAIN)
        flows: dict[str, Flow] = {}
        flows["email"] = Flow("email", lambda: plan.recipients)
        flows["workflow"] = Flow("workflow", lambda: plan.drivers)
        flows["notices"] = Flow("notices", lambda: plan.notices)
        domains = {EMAIL_DOMAIN: "email", WORKFLOW_DOMAIN: "workflow", NOTICES_DOMAIN: "notices",
                   **{d: "removals" for d in REMOVAL_DOMAINS}}
        run = Run(plan, tmp, stack, client, flows, SinkLog(tmp / "received.jsonl", flows, domains), broker)
        # The requester's receipt, one mail per deposer, then one alert per accepted click.
        flows["removals"] = Flow("removals", lambda: plan.deposers + 1 + plan.clicks - len(run.clicks.failed))
        run.workers = {name: LogWatch(tmp / "logs" / f"{name}.log", "worker.started")
                       for name in ("main-worker", "mail-worker")}
        await wait_healthy(run.tick, urls, run.workers)
        print(f"stack up in {time.monotonic() - began:.1f} s", flush=True)
        run.started = time.time()
        ticking = asyncio.create_task(ticker(run))
        faults = asyncio.create_task(fault_plan(run))
        ids, _ = await asyncio.gather(drive(run, urls, email, workflow, requester, request_file),
                                      run_notices(run, urls["notices"]))
        remaining = plan.deadline - (time.monotonic() - began)
        await until(lambda: faults.done() and all(f.done() for f in flows.values()), seconds=max(1, remaining),
                    what="every flow to finish")
        faults.cancel()
        await settle(run, ids, max(30, plan.deadline - (time.monotonic() - began)))
        reports = await verdict(run, ids, workflow)
        ticking.cancel()
        missed = report(run, reports, time.monotonic() - began)
        return 1 if missed else 0
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="a few hundred recipients, one mail-worker crash")
    parser.add_argument("--keep", action="store_true", help="keep the logs and the sink's record afterwards")
    options = parser.parse_args()
    raise SystemExit(asyncio.run(main(SHORT if options.short else FULL, options.keep)))
