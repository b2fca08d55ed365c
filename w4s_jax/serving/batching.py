"""`RequestBatcher`: concurrent HTTP requests -> shared sampler calls in one worker thread.

Requests wait in an asyncio queue for up to `wait_ms` (or until `max_rows` rows are collected),
are grouped by what selects a compiled program (greedy / sampled / filtered, and the new-token
bucket) and each group runs as one `Sampler.generate_requests` call in a single worker thread, so
the event loop keeps accepting and streaming while the accelerator works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Sequence

from w4s_jax.sampling.bucketing import next_power_of_two
from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.sampler import Sampler

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Pending:
    prompts: list[list[int]]
    params: SamplingParams
    future: asyncio.Future


def group_key(params: SamplingParams) -> tuple[str, int]:
    """Requests with the same key share one compiled program (see Sampler)."""
    mode = "greedy" if params.is_greedy else ("filtered" if params.needs_filtering else "sample")
    return mode, next_power_of_two(params.max_new_tokens)


class RequestBatcher:
    """Collects requests for a few milliseconds and runs them together; see the module doc."""

    def __init__(self, sampler: Sampler, max_rows: int, wait_ms: float) -> None:
        self.sampler = sampler
        self.max_rows = max(1, int(max_rows))
        self.wait_s = max(0.0, float(wait_ms)) / 1000
        self.calls = 0  # sampler calls made (tests check that concurrent requests were batched)
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Finishes everything already queued, then stops the worker."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._worker.shutdown(wait=True)

    async def submit(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        """Completions for one request; raises what the sampler raised for its group."""
        if self._task is None:
            raise RuntimeError("RequestBatcher is not running (start() it inside the server's event loop)")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending([list(p) for p in prompts], params, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        closing = False
        while not closing:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            rows = len(first.prompts) * first.params.n
            deadline = loop.time() + self.wait_s
            while rows < self.max_rows:
                timeout = deadline - loop.time()
                try:
                    item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
                rows += len(item.prompts) * item.params.n
            groups: dict[tuple[str, int], list[_Pending]] = {}
            for pending in batch:
                groups.setdefault(group_key(pending.params), []).append(pending)
            for group in groups.values():
                await self._run(loop, group)

    async def _run(self, loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
        requests = [(p.prompts, p.params) for p in group]
        self.calls += 1
        try:
            results = await loop.run_in_executor(self._worker, self.sampler.generate_requests, requests)
        except Exception as error:  # one failure answers every request of the group, the loop lives on
            log.exception("sampler call failed for %d requests", len(group))
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        for pending, result in zip(group, results):
            if not pending.future.done():
                pending.future.set_result(result)
