"""`gather_or_cancel`: asyncio.gather where the first error cancels the siblings.

Plain `asyncio.gather` lets the siblings of a failed awaitable run on, orphaned: candidates would go
on paying for executor calls after their rollout has failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """The results in order; on the first error (or a cancellation) every other one is cancelled and
    awaited before the error propagates."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
