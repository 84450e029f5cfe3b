"""What the chaos bench watches while it runs: the sink's messages per flow, and each fault's recovery.

A flow's progress is the arrival, in the SMTP sink, of a message it had not received yet. After a fault, a flow
that was under way is "recovered" once the first pause of at least GAP seconds that began within WINDOW seconds of
the fault is over (a flow that never paused that long was not interrupted): a crashed mail worker's batch is only
retried after its heartbeat timeout, a crashed main worker's activity after its own, and that wait is the time a
user sees the campaign stand still.
"""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GAP = 3.0  # seconds without a new message: the flow is standing still (paced flows send every few 10 ms)
WINDOW = 40.0  # a pause that begins this long after the fault is not blamed on it


@dataclass
class Flow:
    """One flow's messages in the sink: first arrivals (epoch seconds) and re-deliveries."""

    name: str
    expected: Callable[[], int]  # how many distinct messages it should end with (can grow: one per click)
    arrivals: list[float] = field(default_factory=list)
    duplicates: int = 0
    started: float | None = None  # when the user launched it

    @property
    def received(self) -> int:
        return len(self.arrivals)

    def fraction(self) -> float:
        return self.received / max(1, self.expected())

    def done(self) -> bool:
        return self.started is not None and self.received >= self.expected()

    def under_way(self) -> bool:
        return self.started is not None and not self.done()

    def pause_after(self, moment: float, now: float) -> tuple[float, float | None] | None:
        """The first pause of GAP seconds or more that ends after `moment` and began before `moment + WINDOW`:
        (start, end), end None while it lasts. None: no such pause (yet)."""
        previous = max([t for t in self.arrivals if t <= moment], default=self.started or moment)
        for t in (t for t in self.arrivals if t > moment):
            if previous >= moment + WINDOW:
                return None
            if t - previous >= GAP:
                return previous, t
            previous = t
        if previous < moment + WINDOW and now - previous >= GAP and not self.done():
            return previous, None
        return None


class SinkLog:
    """Follows the sink's JSON lines (`bench.chaos_sink`): counts by Message-ID and by recipient, per flow by
    recipient domain."""

    def __init__(self, path: Path, flows: dict[str, Flow], domains: dict[str, str]) -> None:
        self.path, self.flows, self.domains = path, flows, domains
        self.seen: Counter[str] = Counter()
        self.by_recipient: Counter[str] = Counter()  # messages received per address, whatever their Message-ID
        self.link_texts: list[str] = []
        self.other = 0  # messages of no flow (should stay 0)
        self._offset, self._partial = 0, ""

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset = f.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line:
                self._add(json.loads(line))

    def _add(self, record: dict[str, object]) -> None:
        mid = str(record["mid"])
        rcpt = [str(r) for r in record["rcpt"]]  # type: ignore[attr-defined]
        flow = next((self.flows[name] for r in rcpt for domain, name in self.domains.items()
                     if r.endswith("@" + domain)), None)
        self.seen[mid] += 1
        self.by_recipient.update(rcpt)
        if flow is None:
            self.other += 1
        elif self.seen[mid] == 1:
            flow.arrivals.append(float(record["t"]))  # type: ignore[arg-type]
        else:
            flow.duplicates += 1
        if "text" in record:
            self.link_texts.append(str(record["text"]))


@dataclass
class Fault:
    """One fault of the plan: what, when it may fire (`ready`), and what the bench saw after it."""

    name: str
    kind: str  # mail-kill | main-kill | temporal-restart | smtp-cut
    ready: Callable[[], bool]
    at: float | None = None  # epoch seconds
    back: float | None = None  # the faulted part is up again (process restarted and ready, SMTP reachable)
    under_way: list[str] = field(default_factory=list)  # flows under way when it fired
    pauses: dict[str, tuple[float, float | None] | None] = field(default_factory=dict)

    def recovered(self, flows: dict[str, Flow], now: float) -> bool:
        """Back, and every flow that was under way has resumed (or went WINDOW seconds without pausing)."""
        if self.at is None or self.back is None:
            return False
        for name in self.under_way:
            flow = flows[name]
            pause = flow.pause_after(self.at, now)
            self.pauses[name] = pause
            if pause is None and not flow.done() and now < self.at + WINDOW:
                return False
            if pause is not None and pause[1] is None:
                return False
        return True

    def recovery(self) -> float | None:
        """Seconds from the fault to the last of its flows moving again (at least until the part was back)."""
        if self.at is None or self.back is None:
            return None
        ends = [p[1] for p in self.pauses.values() if p is not None]
        if any(end is None for end in ends):
            return None
        return max([self.back, *(e for e in ends if e is not None)]) - self.at
