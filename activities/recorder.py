"""The group-commit writer of the bulk senders (campaign batches, the notices robot): the SMTP connections hand it
each outcome as soon as its reply comes; it commits whatever is ready, up to `GROUP_LIMIT` per transaction, while
the connections go on sending, and heartbeats the activity.

A connection takes its next message only after `room()`, that is while fewer than `GROUP_LIMIT` outcomes wait for
their commit: a `kill -9` of the sending process can leave at most one message in flight per connection plus
`GROUP_LIMIT` accepted by the server and not recorded, which is what a retry may send again.
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from sqlalchemy.exc import OperationalError
from temporalio import activity

from core.logging import log
from workflows.data.mail import BatchSendResult

GROUP_LIMIT = 16  # outcomes committed by one transaction at most, and most outcomes waiting for their commit
HEARTBEAT_SECONDS = 5.0  # longest silence of a running batch
COMMIT_TRIES = 5  # a lost database connection is retried (1, 2, 4, 8 s) before the batch fails


class Outcome(Protocol):
    @property
    def status(self) -> str: ...  # sent | ko | pending


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


class RecorderFailed(Exception):
    """The writer could not record outcomes: the connections stop sending."""


class Recorder(Generic[OutcomeT]):
    """Commits the outcomes that are ready, a group at a time, with `record` (blocking: run in a thread)."""

    def __init__(self, record: Callable[[list[OutcomeT]], None]) -> None:
        self.record = record
        self.ready: list[OutcomeT] = []
        self.committing = 0
        self.counts = BatchSendResult(0, 0, 0)
        self.closed = self.failed = False
        self.wake = asyncio.Event()  # an outcome is ready, or the batch is over
        self.room_made = asyncio.Event()  # a group was committed

    @property
    def done(self) -> int:
        return self.counts.sent + self.counts.ko + self.counts.pending

    def add(self, outcome: OutcomeT) -> None:
        self.ready.append(outcome)
        self.wake.set()

    def close(self) -> None:
        """No more outcomes: commit what is left and stop."""
        self.closed = True
        self.wake.set()

    async def room(self) -> None:
        """Wait until fewer than GROUP_LIMIT outcomes wait for their commit (what keeps the bound)."""
        while len(self.ready) + self.committing >= GROUP_LIMIT and not self.failed:
            self.room_made.clear()
            await self.room_made.wait()
        if self.failed:
            raise RecorderFailed

    async def drain(self) -> None:
        """Wait until every outcome handed so far is committed."""
        while (self.ready or self.committing) and not self.failed:
            self.room_made.clear()
            await self.room_made.wait()
        if self.failed:
            raise RecorderFailed

    async def run(self) -> None:
        try:
            while self.ready or not self.closed:
                if not self.ready:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEARTBEAT_SECONDS):
                            await self.wake.wait()
                    if not self.ready:
                        activity.heartbeat(self.done)  # nothing moved (a slow or paced server): still alive
                        continue
                group, self.ready = self.ready[:GROUP_LIMIT], self.ready[GROUP_LIMIT:]
                self.committing = len(group)
                await self._commit(group)
                self.committing = 0
                for o in group:
                    setattr(self.counts, o.status, getattr(self.counts, o.status) + 1)
                self.room_made.set()
                activity.heartbeat(self.done)
        except BaseException:
            self.failed = True
            self.room_made.set()
            raise

    async def _commit(self, group: list[OutcomeT]) -> None:
        for attempt in range(COMMIT_TRIES):
            try:
                await asyncio.to_thread(self.record, group)
                return
            except OperationalError as exc:  # the database restarted or the connection dropped: try again
                if attempt == COMMIT_TRIES - 1:
                    raise
                log.warning("mail.batch.record_retry", error=str(exc).splitlines()[0], attempt=attempt + 1)
                activity.heartbeat(self.done)
                await asyncio.sleep(2**attempt)
