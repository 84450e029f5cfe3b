"""Waiting for real I/O done by other processes (a worker sending mail), bounded.

This is not a way to let business time pass (the time-skipping server does that): it only waits for
work that is already due to finish, checking a condition every 50 ms for at most `seconds`.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode


async def wait_until(condition: Callable[[], bool], *, seconds: float = 30.0, what: str = "condition") -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the condition lives in another process: no event to await)
            await asyncio.sleep(0.05)
    assert condition(), what


async def started(client: Client, workflow_id: str, *, seconds: float = 60.0) -> WorkflowHandle[Any, Any]:
    """The handle of a workflow that the signal relay starts a moment after the request that queued it (the
    services never start workflows themselves: `core.signals`), once it exists."""
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(seconds):
        while True:
            try:
                await handle.describe()
                return handle
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.05)


async def result_of(client: Client, workflow_id: str, *, seconds: float = 60.0) -> Any:
    """The result of a workflow started by the relay (`started`)."""
    return await (await started(client, workflow_id, seconds=seconds)).result()
