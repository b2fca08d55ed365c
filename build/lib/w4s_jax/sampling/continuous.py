"""`ContinuousBatcher`: rows join and leave a running batch between decode calls; tokens go out as chosen.

One thread owns the device state: a `DecodeState` of B row slots over S cache slots. It loops:
1. admit waiting rows (as many as `Sampler.max_batch` allows), grouped by prompt bucket: each group
   is prefilled and inserted into free row slots; when nothing runs, the prefill becomes the state;
2. run one decode call of up to `steps_per_call` tokens for every live row;
3. hand each row's new tokens to its request (text deltas for streamed requests), finish the rows
   that chose a stop id, reached max_new_tokens or completed a stop string, and free their slots.

Layout: every live row's newest token sits in the shared slot `cache.end` (the decoder's cache
writes one slot for all rows), so a joining row's prompt is written to the slots just before
`end`. A relayout (one gather) packs live rows to the front and moves the window of cache slots
so it starts at the oldest live row's first slot and fits every live row's longest possible reply;
it runs when a join needs rows or slots the state lacks, and when the state is four times larger
than its live rows need. Rows keep their own random streams (seed, prompt, sample, token index),
so a reply does not depend on when its request arrived or what it shared a batch with.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from w4s_jax.sampling.bucketing import batch_bucket, next_power_of_two
from w4s_jax.sampling.decode_state import DecodeState, RowKnobs, SampleRow
from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.sampler import Decoded, Sampler, cache_slots, sampling_mode
from w4s_jax.sampling.stopping import settled_text

log = logging.getLogger(__name__)

SHRINK_FACTOR = 4  # relayout to a smaller state once it is this many times larger than its live rows need


@dataclasses.dataclass(frozen=True)
class RowEvent:
    """Progress of one row (one choice) of a request, handed to the request's sink."""

    prompt_index: int
    sample_index: int
    text: str  # text that became final since the last event (streamed requests only; else "")
    completion: Completion | None = None  # set on the row's last event


Sink = Callable[[RowEvent | BaseException], None]  # called on the batcher's thread; an exception ends the request


@dataclasses.dataclass(eq=False)
class Ticket:
    """A submitted request: where its events go, and its number of rows (prompts x n)."""

    sink: Sink
    stream: bool
    rows: int
    cancelled: bool = False


@dataclasses.dataclass(eq=False)
class _Live:
    """A row in a slot of the running state."""

    ticket: Ticket
    row: SampleRow
    first_slot: int  # cache slot of the row's first prompt token
    tokens: list[int] = dataclasses.field(default_factory=list)  # chosen so far (a stop token included)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    sent: str = ""  # text already handed to a streamed request

    @property
    def slot_bound(self) -> int:
        """One past the last cache slot this row can write: its prompt plus its fed-back tokens."""
        return self.first_slot + len(self.row.prompt) + self.row.params.max_new_tokens - 1


class ContinuousBatcher:
    """Continuous batching over a `Sampler`'s programs; see the module doc. Thread-safe `submit`/`cancel`."""

    def __init__(self, sampler: Sampler, *, steps_per_call: int) -> None:
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        self.sampler = sampler
        self.steps_per_call = int(steps_per_call)
        self.max_rows = sampler.max_batch
        self.decode_calls = 0  # counters for tests and benchmarks
        self.relayouts = 0
        self.finished_rows = 0
        self.max_live_rows = 0
        self._cond = threading.Condition()
        self._waiting: collections.deque[tuple[Ticket, SampleRow]] = collections.deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        # Owned by the batcher's thread:
        self._state: DecodeState | None = None
        self._knobs: RowKnobs | None = None
        self._slots: list[_Live | None] = []
        self._end = 0  # host copy of the state's cache.end
        self._ended: set[int] = set()  # rows the host ended (stop string, cancel) that the device still decodes

    # ---------------------------------------------------------------- any thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="continuous-batcher", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def live_rows(self) -> int:
        """Rows in the running batch (a snapshot: the batcher's thread changes it)."""
        return sum(slot is not None for slot in list(self._slots))

    @property
    def waiting_rows(self) -> int:
        """Rows submitted but not yet admitted."""
        with self._cond:
            return len(self._waiting)

    def submit(self, prompts: Sequence[Sequence[int]], params: SamplingParams, sink: Sink, *,
               stream: bool) -> Ticket:
        """Queues a request's rows; raises ValueError for one the sampler cannot serve."""
        rows = self.sampler.rows_of(prompts, params)
        ticket = Ticket(sink, stream, len(rows))
        with self._cond:
            if self._closing or not self.running:
                raise RuntimeError("ContinuousBatcher is not running (start() it; once closed it takes no requests)")
            self._waiting.extend((ticket, row) for row in rows)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Drops a request: its waiting rows now, its running rows at the next decode call."""
        with self._cond:
            ticket.cancelled = True
            self._waiting = collections.deque(item for item in self._waiting if item[0] is not ticket)
            self._cond.notify()

    def close(self) -> None:
        """Finishes every submitted request, then stops the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    # ---------------------------------------------------------------- the batcher's thread

    def _live(self) -> list[int]:
        return [i for i, slot in enumerate(self._slots) if slot is not None]

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._tidy()
                while not self._waiting and not self._live() and not self._closing:
                    self._cond.wait()
                    self._tidy()
                if self._closing and not self._waiting and not self._live():
                    return
                joining = []
                while self._waiting and len(self._live()) + len(joining) < self.max_rows:
                    joining.append(self._waiting.popleft())
            try:
                self._admit(joining)
                if self._live():
                    self._decode()
            except Exception as error:  # a failure ends the requests it touched; the loop lives on
                log.exception("continuous batcher: a compiled call failed")
                self._fail([ticket for ticket, _ in joining] + [self._slots[i].ticket for i in self._live()], error)

    def _tidy(self) -> None:
        """Frees the rows of cancelled requests; drops the state once no row is live (the next
        admission starts afresh with a prefill of its own shape)."""
        for i in self._live():
            if self._slots[i].ticket.cancelled:
                self._free(i)
        if not self._live():
            self._state = self._knobs = None

    def _admit(self, joining: list[tuple[Ticket, SampleRow]]) -> None:
        groups: dict[int, list[tuple[Ticket, SampleRow]]] = {}
        for ticket, row in joining:
            groups.setdefault(self.sampler.prompt_bucket([row]), []).append((ticket, row))
        for group in groups.values():
            rows = [row for _, row in group]
            if self._state is None:
                prefilled = self.sampler.prefill(rows, room=max(self.sampler.new_bucket(row) for row in rows))
                self._state, self._knobs = prefilled.state, prefilled.knobs
                self._slots, self._ended = [None] * len(prefilled.first_tokens), set()
                self._end = prefilled.prompt_len
                targets = list(range(len(rows)))
            else:
                prefilled = self.sampler.prefill(rows, room=0)
                self._make_room(rows, prefilled.prompt_len)
                targets = [i for i, slot in enumerate(self._slots) if slot is None][: len(rows)]
                self._state, self._knobs = self.sampler.insert(self._state, self._knobs, prefilled, targets)
                self._ended -= set(targets)
            for i, (target, (ticket, row)) in enumerate(zip(targets, group)):
                self._slots[target] = _Live(ticket, row, first_slot=self._end - len(row.prompt))
                first = int(prefilled.first_tokens[i])
                stopped = first in self.sampler.stop_ids(row.params)
                self._accept(target, [first], [float(prefilled.first_logprobs[i])],
                             done=stopped or row.params.max_new_tokens <= 1, stopped=stopped)
        self.max_live_rows = max(self.max_live_rows, len(self._live()))

    def _slot_bucket(self, slots: int) -> int:
        return max(next_power_of_two(slots), self.sampler.min_prompt_bucket)

    def _make_room(self, rows: list[SampleRow], prompt_len: int) -> None:
        """Relayout so that `rows` (prefilled to `prompt_len` slots) fit: free row slots, `end >= prompt_len`
        and cache slots for every row's longest reply."""
        live = self._live()
        bounds = [self._slots[i].slot_bound for i in live] + [self._end + r.params.max_new_tokens - 1 for r in rows]
        bound = max(bounds)
        free = len(self._slots) - len(live)
        if free >= len(rows) and self._end >= prompt_len and bound <= self._cache_len():
            return
        start = min([self._slots[i].first_slot for i in live] + [self._end - prompt_len])
        self._relayout(live, start, batch_bucket(len(live) + len(rows), self.sampler.batch_multiple, self.max_rows),
                       self._slot_bucket(bound - start))

    def _shrink_if_oversized(self) -> None:
        live = self._live()
        with self._cond:
            if self._waiting:
                return  # joins are coming: keep the room
        start = min(self._slots[i].first_slot for i in live)
        needed = self._slot_bucket(max(self._slots[i].slot_bound for i in live) - start)
        batch = batch_bucket(len(live), self.sampler.batch_multiple, self.max_rows)
        if batch * SHRINK_FACTOR <= len(self._slots) or needed * SHRINK_FACTOR <= self._cache_len():
            self._relayout(live, start, batch, needed)

    def _cache_len(self) -> int:
        return cache_slots(self._state.cache)

    def _relayout(self, live: list[int], start: int, batch: int, cache_len: int) -> None:
        row_map = live + [-1] * (batch - len(live))
        self._state, self._knobs = self.sampler.relayout(self._state, self._knobs, row_map, start, cache_len)
        self.relayouts += 1
        self._slots = [self._slots[i] for i in live] + [None] * (batch - len(live))
        for slot in self._slots[: len(live)]:
            slot.first_slot -= start
        self._end -= start
        self._ended = set()  # the rows it named were not carried over

    def _decode(self) -> None:
        self._shrink_if_oversized()
        live = self._live()
        ended = np.zeros(len(self._slots), bool)
        ended[list(self._ended)] = True
        mode = sampling_mode(self._slots[i].row.params for i in live)
        self._state, decoded = self.sampler.decode(self._state, self._knobs, steps=self.steps_per_call, mode=mode,
                                                   ended=ended)
        self.decode_calls += 1
        self._ended = set()
        self._end = int(np.asarray(self._state.cache.end))
        for i in live:
            self._take(i, decoded)

    def _take(self, i: int, decoded: Decoded) -> None:
        slot = self._slots[i]
        count = int(decoded.generated[i]) - len(slot.tokens)
        self._accept(i, decoded.out_tokens[i, :count].tolist(), decoded.out_logprobs[i, :count].tolist(),
                     done=bool(decoded.done[i]), stopped=bool(decoded.stopped[i]))

    def _accept(self, i: int, tokens: list[int], logprobs: list[float], *, done: bool, stopped: bool) -> None:
        """Adds a row's new tokens; finishes it (device done, or a stop string) or streams its settled text."""
        slot = self._slots[i]
        slot.tokens += tokens
        slot.logprobs += logprobs
        if done:
            self._finish(i, stopped)
            return
        params = slot.row.params
        if self.sampler.tokenizer is None or not (slot.ticket.stream or params.stop_strings):
            return
        text = self.sampler.tokenizer.decode(slot.tokens)
        settled, stop_string = settled_text(text, params.stop_strings)
        if stop_string:
            self._ended.add(i)
            self._finish(i, False)
        elif slot.ticket.stream and settled > len(slot.sent) and text.startswith(slot.sent):
            self._emit(slot, text[len(slot.sent): settled])
            slot.sent = text[:settled]

    def _finish(self, i: int, stopped: bool) -> None:
        slot = self._slots[i]
        completion = self.sampler.completion(slot.row, slot.tokens, slot.logprobs, stopped)
        streams = slot.ticket.stream and completion.text.startswith(slot.sent)
        self._emit(slot, completion.text[len(slot.sent):] if streams else "", completion)
        self._slots[i] = None
        self.finished_rows += 1

    def _free(self, i: int) -> None:
        """Drops a cancelled request's row; the device marks it done at the next decode call."""
        self._slots[i] = None
        self._ended.add(i)

    def _emit(self, slot: _Live, text: str, completion: Completion | None = None) -> None:
        if slot.ticket.cancelled or not (text or completion):
            return
        try:
            slot.ticket.sink(RowEvent(slot.row.prompt_index, slot.row.sample_index, text, completion))
        except Exception:  # a broken sink must not stop the other requests
            log.exception("continuous batcher: a request's sink failed")

    def _fail(self, tickets: list[Ticket], error: Exception) -> None:
        for ticket in {id(t): t for t in tickets}.values():
            if not ticket.cancelled:
                ticket.cancelled = True
                try:
                    ticket.sink(error)
                except Exception:
                    log.exception("continuous batcher: a request's sink failed")
        with self._cond:
            self._waiting = collections.deque(item for item in self._waiting if not item[0].cancelled)
        self._state = self._knobs = None
        self._slots, self._ended = [], set()
