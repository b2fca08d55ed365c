"""The sampler's device state as typed pytrees: per-row request knobs, the decode state, the loop carry.

Every field is an array with the batch (row) axis first, so rows can be gathered, scattered and
re-laid out between compiled calls (continuous batching) without the programs knowing why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from w4s_jax.models.kv_cache import KVCache
from w4s_jax.sampling.params import SamplingParams

# What an empty row (batch padding, a free slot) holds: greedy, no budget, no stop ids, already done.
EMPTY_KNOBS = dict(temperature=0.0, top_p=1.0, top_k=0, seeds=0, prompt_index=0, sample_index=0, max_new=0,
                   stop_ids=-1)
KNOB_DTYPES = dict(temperature=np.float32, top_p=np.float32, top_k=np.int32, seeds=np.uint32, prompt_index=np.int32,
                   sample_index=np.int32, max_new=np.int32, stop_ids=np.int32)
EMPTY_ROW = dict(tokens=0, positions=0, generated=0, done=True, stopped=False)


@dataclasses.dataclass(frozen=True)
class SampleRow:
    """One sequence to generate: a prompt, its request's params, and its place in the request."""

    prompt: list[int]
    params: SamplingParams
    prompt_index: int
    sample_index: int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RowKnobs:
    """What each row's request asked for; fixed while the row lives. Runtime values, so requests with
    different settings share one compiled program."""

    temperature: jax.Array  # float32 [B]: softmax temperature; 0 = greedy
    top_p: jax.Array  # float32 [B]: nucleus threshold; 1 = off
    top_k: jax.Array  # int32 [B]: keep the k most likely tokens; 0 = off
    seeds: jax.Array  # uint32 [B]: the request's seed ...
    prompt_index: jax.Array  # int32 [B]: ... its prompt within the request ...
    sample_index: jax.Array  # int32 [B]: ... and which of its n samples: together the row's random stream
    max_new: jax.Array  # int32 [B]: the request's max_new_tokens (0 = an empty row)
    stop_ids: jax.Array  # int32 [B, max_stop_ids]: token ids that end the row; -1 = unused entry

    @classmethod
    def from_rows(cls, rows: Sequence[SampleRow], batch: int, max_stop_ids: int,
                  stop_ids: Callable[[SamplingParams], tuple[int, ...]]) -> RowKnobs:
        """Host (numpy) knobs for `rows`, padded to `batch` rows with EMPTY_KNOBS."""
        columns = {name: np.full(batch if name != "stop_ids" else (batch, max_stop_ids), EMPTY_KNOBS[name],
                                 KNOB_DTYPES[name]) for name in EMPTY_KNOBS}
        for i, row in enumerate(rows):
            p = row.params
            values = dict(temperature=p.temperature, top_p=p.top_p, top_k=p.top_k, seeds=p.seed % 2**32,
                          prompt_index=row.prompt_index, sample_index=row.sample_index, max_new=p.max_new_tokens)
            for name, value in values.items():
                columns[name][i] = value
            ids = stop_ids(p)
            columns["stop_ids"][i, : len(ids)] = ids
        return cls(**columns)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeState:
    """Where every row stands between decode steps; what prefill returns and each decode call advances."""

    cache: KVCache  # keys/values of all rows; cache.end = the slot the next step writes, shared by all rows
    tokens: jax.Array  # int32 [B]: each row's last chosen token, the next step's input (0 once done)
    positions: jax.Array  # int32 [B]: RoPE position of `tokens` (prompt length + tokens chosen - 1)
    generated: jax.Array  # int32 [B]: tokens chosen so far (the first by prefill); indexes the row's random stream
    done: jax.Array  # bool [B]: no more tokens: a stop id was chosen, max_new was reached, or the row is empty
    stopped: jax.Array  # bool [B]: the row ended on a stop id (finish reason "stop" rather than "length")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeCarry:
    """The carry of one decode call's while loop."""

    state: DecodeState  # the rows, advanced one token per step
    step: jax.Array  # int32 []: steps taken in this call; the loop ends at its step limit or once all rows are done
    out_tokens: jax.Array  # int32 [B, steps]: the token each row chose at each step of this call (0 once done)
    out_logprobs: jax.Array  # float32 [B, steps]: log-probabilities of out_tokens under the raw logits
