"""`AsyncBatcher`: the server's asyncio face of a `ContinuousBatcher` (which runs on its own thread).

A request is submitted at once and joins the running batch at the next decode call; its row
events cross into the event loop through a queue, so the loop keeps accepting and streaming while
the accelerator works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from w4s_jax.sampling.continuous import ContinuousBatcher, RowEvent, Ticket
from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.sampler import Sampler


class Submission:
    """One submitted request: its row events as they come (`events()`), or `cancel()` to drop it."""

    def __init__(self, batcher: ContinuousBatcher, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 stream: bool) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[RowEvent | BaseException] = asyncio.Queue()
        self._batcher = batcher
        self._ticket: Ticket = batcher.submit(
            prompts, params, lambda event: loop.call_soon_threadsafe(self._queue.put_nowait, event), stream=stream
        )
        self._unfinished = self._ticket.rows

    async def events(self) -> AsyncIterator[RowEvent]:
        """Row events until every row has its completion; raises what failed the request's compiled call."""
        while self._unfinished:
            event = await self._queue.get()
            if isinstance(event, BaseException):
                self._unfinished = 0
                raise event
            if event.completion is not None:
                self._unfinished -= 1
            yield event

    def cancel(self) -> None:
        """Frees the request's rows (a client that went away); a finished request is left alone."""
        if self._unfinished:
            self._batcher.cancel(self._ticket)
            self._unfinished = 0


class AsyncBatcher:
    """Continuous batching for the server; see the module doc."""

    def __init__(self, sampler: Sampler, *, steps_per_call: int) -> None:
        self.engine = ContinuousBatcher(sampler, steps_per_call=steps_per_call)

    def start(self) -> None:
        self.engine.start()

    async def close(self) -> None:
        """Finishes every submitted request, then stops the batcher's thread."""
        await asyncio.to_thread(self.engine.close)

    def submit(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *, stream: bool) -> Submission:
        """Queues a request now (must be called on the event loop); `stream` asks for text deltas."""
        return Submission(self.engine, prompts, params, stream)

    async def complete(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions per prompt, once all are done."""
        submission = self.submit(prompts, params, stream=False)
        results: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        try:
            async for event in submission.events():
                if event.completion is not None:
                    results[event.prompt_index][event.sample_index] = event.completion
        finally:
            submission.cancel()  # only if the caller was cancelled before the end
        return results
