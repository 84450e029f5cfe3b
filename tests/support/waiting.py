"""Waiting for real I/O done by other processes (a worker sending mail), bounded.

This is not a way to let business time pass (the time-skipping server does that): it only waits for
work that is already due to finish, checking a condition every 50 ms for at most `seconds`.
"""

import asyncio
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], *, seconds: float = 30.0, what: str = "condition") -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the condition lives in another process: no event to await)
            await asyncio.sleep(0.05)
    assert condition(), what
