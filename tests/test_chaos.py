"""`bench/chaos.py --short` inside `make test`: the real stack in its own processes (embedded PostgreSQL, the
Temporal dev server, the worker as two processes, the campaigns, removals and notices services, an SMTP sink behind
a proxy), a few hundred recipients across the four flows (80 notices sent by the mail robot), and one SIGKILL of the
mail worker while the robot sends. It must end with every recipient in exactly one final state, duplicates within
the senders' bounds, nothing stuck (about a minute and a half)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def database() -> None:
    """The bench starts its own PostgreSQL: this replaces the session's one for this module."""


def test_short_chaos_run_loses_nothing_and_sends_nothing_twice_beyond_the_bound() -> None:
    # The bench sets up everything it needs; what the test session put in the environment must not leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    done = subprocess.run([sys.executable, "-m", "bench.chaos", "--short"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    output = done.stdout + done.stderr
    print(output)  # the figures, shown by pytest when the test fails (and with -s)
    assert done.returncode == 0, output[-4000:]
    assert "result: every goal met" in done.stdout
    assert "mail-worker s'est arrêté (code -9) : redémarrage dans 1 s" in done.stdout  # restarted as by make run
    # The kill came while the robot was sending, and none of its notices was lost or sent twice beyond its bound.
    assert re.search(r"1\. mail worker SIGKILL at .*notices paused", done.stdout), done.stdout[-4000:]
    notices = re.search(r"notices robot: (\d+)/(\d+) notices in exactly one final state \(100\.0 %.*?"
                        r"duplicates received (\d+) \(bound (\d+) = \d+ x 1\); stuck 0", done.stdout)
    assert notices, done.stdout[-4000:]
    final, total, duplicates, bound = map(int, notices.groups())
    assert final == total == 80 and duplicates <= bound
