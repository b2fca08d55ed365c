"""The asyncio rollout actor's generation batcher: one `Policy.generate` call per step for all rollouts.

Every candidate coroutine of every rollout asks for one reply at a time. The batcher gathers these
requests and sends them together, so the meta-agent sees large batches (what an accelerator wants)
while evaluations keep running concurrently.

When a batch goes out:
- lockstep (default): when every live participant waits for a reply. The batches are then the same
  on every rerun, and on several hosts every host reaches the same step: each host's actor owns its
  own rollouts (`host_share`) and contributes their prompts, and the sampler runs the global batch
  (all hosts call it together). Replies are seeded per request either way, so they do not depend on
  the batch.
- otherwise: `window_s` after the first waiting request (lower latency for a remote endpoint).

A batch's replies are journaled as one record, so a restarted run replays whole batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Sequence
from typing import TypeVar

from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.policy import Conversation, Policy

T = TypeVar("T")


@dataclasses.dataclass
class _Request:
    key: str
    conversation: Conversation
    seed: int
    future: asyncio.Future[str]


def host_share(items: Sequence[T], process_index: int, process_count: int) -> list[T]:
    """The rollouts one host runs (round-robin); every host contributes its own rollouts' prompts."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    return [item for position, item in enumerate(items) if position % process_count == process_index]


class GenerationBatcher:
    """Gathers single-reply requests from many coroutines into `Policy.generate` batches."""

    def __init__(self, policy: Policy, journal: Journal, *, temperature: float, max_new_tokens: int,
                 lockstep: bool = True, window_s: float = 0.05) -> None:
        self.policy = policy
        self.journal = journal
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.lockstep = lockstep
        self.window_s = window_s
        self.replayed: dict[str, str] = {}
        for record in journal.records("generations"):
            self.replayed.update(record["replies"])
        self.active = 0
        self.pending: list[_Request] = []
        self.in_flight = 0
        self.batch_sizes: list[int] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def join(self, count: int = 1) -> None:
        """`count` more coroutines may ask for replies; call before they start."""
        self.active += count

    def leave(self, count: int = 1) -> None:
        """`count` coroutines will ask for no more replies (finished, or awaiting children)."""
        self.active -= count
        self._maybe_flush()

    async def generate(self, key: str, conversation: Conversation, seed: int) -> str:
        """One reply for `conversation`; `key` names it in the journal (unique per sample)."""
        if key in self.replayed:
            return self.replayed[key]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        request = _Request(key, conversation, seed, future)
        self.pending.append(request)
        self._maybe_flush()
        try:
            return await future
        except asyncio.CancelledError:
            if request in self.pending:
                self.pending.remove(request)
            raise

    def _maybe_flush(self) -> None:
        if not self.pending:
            return
        if len(self.pending) + self.in_flight >= self.active:
            self._flush()
        elif not self.lockstep and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.in_flight += len(batch)
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Request]) -> None:
        try:
            async with self._lock:
                replies = await self.policy.generate(
                    [request.conversation for request in batch], n=1, temperature=self.temperature,
                    max_new_tokens=self.max_new_tokens, seed=[request.seed for request in batch])
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
            self.in_flight -= len(batch)
