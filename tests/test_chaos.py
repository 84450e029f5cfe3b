"""`bench/chaos.py --short` inside `make test`: the real stack in its own processes (embedded PostgreSQL, the
Temporal dev server, the worker as two processes, both services, an SMTP sink behind a proxy), a few hundred
recipients across the three flows, and one SIGKILL of the mail worker. It must end with every recipient in exactly
one final state, duplicates within the sender's bound, nothing stuck (about a minute)."""

import os
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
