"""`GenerationBatcher`: one `Policy.generate` call per step for the candidates of all rollouts.

Every candidate coroutine of every rollout asks for one reply at a time. The batcher gathers these
requests and sends them together, so the meta-agent sees large batches (what an accelerator wants)
while evaluations keep running concurrently. The m candidates of a turn ask for replies to the same
conversation (each with its own seed), so in one batch the in-process sampler prefills that prompt
once for all of them (`sampling.shared_prefill`).

Participants are the coroutines that may still ask for a reply. They enter only through
`GenerationBatcher.gather`, which counts each from before any of them starts until it ends, so no
caller keeps the count by hand. A rollout is a participant that hands its place to its candidates
while it waits on them (`gather(..., handing_over=True)`).

When a batch goes out:
- lockstep (default): when every participant waits for a reply. The batches are then the same on
  every rerun, and on several hosts every host reaches the same step: each host runs its own share
  of the rollouts (`hosts.host_share`) and contributes their prompts, and the sampler runs the
  global batch (all hosts call it together). Replies are seeded per request either way, so they do
  not depend on the batch.
- otherwise: `window_s` after the first waiting request (lower latency for a remote endpoint).

A batch's replies are journaled as one record, so a restarted run replays whole batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from w4s_jax.phase_clock import GENERATION, PhaseClock
from w4s_jax.w4s.concurrency import gather_or_cancel
from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.policy import Conversation, Policy
from w4s_jax.w4s.settings import W4SSettings

T = TypeVar("T")


@dataclasses.dataclass
class _Request:
    key: str
    conversation: Conversation
    seed: int
    future: asyncio.Future[str]


class GenerationBatcher:
    """Gathers single-reply requests from many participant coroutines into `Policy.generate` batches."""

    def __init__(self, policy: Policy, journal: Journal, *, temperature: float, max_new_tokens: int,
                 lockstep: bool = W4SSettings.lockstep_generation, window_s: float = W4SSettings.batch_window_s,
                 clock: PhaseClock | None = None) -> None:
        self.policy = policy
        self.clock = clock if clock is not None else PhaseClock()  # the run's: generation time
        self.journal = journal
        self.sampling = {"temperature": temperature, "max_new_tokens": max_new_tokens}  # the same for every reply
        self.lockstep = lockstep
        self.window_s = window_s
        self.replayed: dict[str, str] = {}
        for record in journal.records("generations"):
            self.replayed.update(record["replies"])
        self.batch_sizes: list[int] = []
        self._participants = 0  # coroutines that may still ask for a reply (owned by `gather`)
        self._pending: list[_Request] = []
        self._in_flight = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def gather(self, coroutines: Sequence[Awaitable[T]], *, handing_over: bool = False) -> list[T]:
        """Runs `coroutines` concurrently as participants; their results in order (the first error
        cancels the rest, see `gather_or_cancel`).

        Each counts as a participant from before any of them starts until it ends, even when it is
        cancelled before it starts. `handing_over=True` when the caller is a participant itself and
        asks for nothing until they end (a rollout waiting on its candidates): they take its place.
        """
        self._participants += len(coroutines) - int(handing_over)
        self._maybe_flush()
        tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
        for task in tasks:
            task.add_done_callback(self._participant_ended)
        try:
            return await gather_or_cancel(tasks)
        finally:
            self._participants += int(handing_over)

    async def generate(self, key: str, conversation: Conversation, seed: int) -> str:
        """One reply for `conversation`; `key` names it in the journal (unique per sample). Only a
        participant (a coroutine run by `gather`) may ask."""
        if key in self.replayed:
            return self.replayed[key]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        request = _Request(key, conversation, seed, future)
        self._pending.append(request)
        self._maybe_flush()
        try:
            return await future
        except asyncio.CancelledError:
            if request in self._pending:
                self._pending.remove(request)
            raise

    def _participant_ended(self, _task: asyncio.Future) -> None:
        self._participants -= 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) + self._in_flight >= self._participants:
            self._flush()
        elif not self.lockstep and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._in_flight += len(batch)
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Request]) -> None:
        try:
            async with self._lock:
                with self.clock.measure(GENERATION):
                    replies = await self.policy.generate([request.conversation for request in batch], n=1,
                                                         seed=[request.seed for request in batch], **self.sampling)
            if len(replies) != len(batch) or any(len(row) != 1 for row in replies):
                raise RuntimeError(f"policy returned {[len(row) for row in replies]} replies for "
                                   f"{len(batch)} conversations with n=1")
            texts = {request.key: row[0] for request, row in zip(batch, replies)}
            batch_key = hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16]
            self.journal.put("generations", batch_key, replies=texts)
            self.batch_sizes.append(len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_result(texts[request.key])
        except Exception as error:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
        finally:
            self._in_flight -= len(batch)
