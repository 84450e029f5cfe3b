"""`python -m wiring worker [--only main|mail]` · `python -m wiring devstack` · `python -m wiring demo`."""

import argparse
import asyncio
import sys

from core import demo, worker
from core.devstack import run as devstack
from wiring import PLATFORM_WORKFLOWS, SERVICES, mail_activities


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m wiring", description="Relais: every service, assembled")
    commands = parser.add_subparsers(dest="command", required=True)
    run_worker = commands.add_parser("worker", help="the Temporal worker (both task queues, or one)")
    run_worker.add_argument("--only", choices=["main", "mail"], help="run a single task queue's worker")
    commands.add_parser("devstack", help="everything on this machine, with demo data (make run)")
    commands.add_parser("demo", help="load the demo data (idempotent; refused in prod)")
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(worker.run(SERVICES, mail_activities, args.only, PLATFORM_WORKFLOWS))
        return 0
    if args.command == "demo":
        demo.load_demo(SERVICES)
        return 0
    return devstack.main(SERVICES, worker_command=[sys.executable, "-m", "wiring", "worker"])


if __name__ == "__main__":
    raise SystemExit(main())
