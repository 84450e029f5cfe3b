"""The dev stack's supervisor (`make run`): a child that dies is restarted after a short backoff with one line in
the console, and stopping the stack leaves no process behind. Real processes, waited on with a bound."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from core.devstack.run import ROOT, Backoff, Stack

# A child that starts a grandchild of its own (as uvicorn starts its workers), logs both pids, and on SIGTERM
# writes its name to the "stopped" file, without stopping the grandchild: the stack must stop that one itself.
CHILD = """
import os, signal, subprocess, sys, time
name, stopped = sys.argv[1], sys.argv[2]
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"prêt pid={os.getpid()} petit-enfant={grandchild.pid}", flush=True)

def on_term(*_):
    with open(stopped, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(1)
"""


@pytest.fixture(autouse=True)
def database() -> None:
    """These tests need no database: this replaces the session's PostgreSQL fixture for this module."""


def _wait(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll real processes (never a way to let business time pass), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pids(log: Path) -> list[tuple[int, int]]:
    """(child, grandchild) of every start logged so far."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("prêt "):
            fields = dict(part.split("=") for part in line.split()[1:])
            found.append((int(fields["pid"]), int(fields["petit-enfant"])))
    return found


def _supervised(stack: Stack, name: str, *, restarts: int) -> bool:
    """One turn of the runner's loop; True once `name` has been restarted `restarts` times."""
    stack.supervise()
    return stack.child(name).restarts == restarts


def _spawn(stack: Stack, name: str, tmp_path: Path) -> None:
    stack.spawn(name, [sys.executable, "-c", CHILD, name, str(tmp_path / "stopped")])
    _wait(lambda: len(_pids(tmp_path / f"{name}.log")) == 1)


def test_backoff_doubles_up_to_30_seconds_and_starts_again_after_a_minute_up() -> None:
    backoff = Backoff()
    delays: list[float] = []
    previous = None
    for _ in range(7):
        previous = backoff.next_delay(previous, uptime=5)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(30, uptime=59) == 30
    assert backoff.next_delay(30, uptime=60) == 1


def test_a_killed_child_is_restarted_and_announced(tmp_path: Path) -> None:
    out = io.StringIO()
    stack = Stack(logs=tmp_path, cwd=ROOT, backoff=Backoff(first=0.2, longest=0.4), out=out)
    try:
        _spawn(stack, "worker", tmp_path)
        [(first_pid, first_grandchild)] = _pids(tmp_path / "worker.log")
        os.kill(first_pid, signal.SIGKILL)
        _wait(lambda: _supervised(stack, "worker", restarts=1))
        _wait(lambda: len(_pids(tmp_path / "worker.log")) == 2)
        second_pid, _ = _pids(tmp_path / "worker.log")[1]
        assert stack.child("worker").proc.pid == second_pid != first_pid
        assert stack.child("worker").proc.poll() is None
        assert _gone(first_grandchild), "the dead child's own children are stopped with it"
        [line] = out.getvalue().splitlines()
        assert line.startswith("!! worker s'est arrêté (code -9) : redémarrage dans 0.2 s — dernières lignes de ")
        assert f"worker.log : prêt pid={first_pid}" in line

        # Dead again soon after its restart: the delay doubles.
        os.kill(second_pid, signal.SIGKILL)
        _wait(lambda: _supervised(stack, "worker", restarts=2))
        assert "(code -9) : redémarrage dans 0.4 s" in out.getvalue().splitlines()[1]
        assert stack.child("worker").proc.poll() is None
    finally:
        stack.stop()
    assert all(_gone(pid) for pair in _pids(tmp_path / "worker.log") for pid in pair)


def test_stop_stops_every_child_in_reverse_order_and_leaves_no_process(tmp_path: Path) -> None:
    stack = Stack(logs=tmp_path, cwd=ROOT, out=io.StringIO())
    try:
        for name in ("temporal", "worker", "campaigns"):
            _spawn(stack, name, tmp_path)
    finally:
        stack.stop()
    assert (tmp_path / "stopped").read_text().split() == ["campaigns", "worker", "temporal"]
    for name in ("temporal", "worker", "campaigns"):
        [(pid, grandchild)] = _pids(tmp_path / f"{name}.log")
        assert _gone(pid) and _gone(grandchild), name


def test_the_console_line_shows_the_logs_last_lines_without_colours(tmp_path: Path) -> None:
    from core.devstack.run import _last_lines

    padding = "x" * 9000  # more than the tail read: its first, cut line must not show
    (tmp_path / "worker.log").write_text(f"{padding}\n\x1b[2m12:00:01\x1b[0m [\x1b[32minfo\x1b[0m] worker.started\n\n"
                                         "Traceback (most recent call last):\nRuntimeError: boom\n")
    assert _last_lines(tmp_path, "worker") == ("12:00:01 [info] worker.started ⏎ Traceback (most recent call last): ⏎ "
                                               "RuntimeError: boom")
    assert _last_lines(tmp_path, "absent") == "(journal vide)"


def test_a_killed_runner_does_not_keep_the_embedded_postgres_running_for_ever(tmp_path: Path) -> None:
    from core.devstack.postgres import forget_dead_users

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".handle_pids.json").write_text(json.dumps([dead.pid, os.getpid()]))
    assert forget_dead_users(tmp_path) == [os.getpid()]
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [os.getpid()]
    assert forget_dead_users(tmp_path / "missing") == []
