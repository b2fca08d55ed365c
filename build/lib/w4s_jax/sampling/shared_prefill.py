"""One prefill per distinct prompt: the rows of a batch that share a prompt share its prefill.

A W4S turn asks for m candidates of one conversation (m requests of n = 1 with their own seeds), and
a served request with n > 1 asks for n rows of each prompt. Their caches after the prompt are the
same, so the sampler prefills each distinct prompt once and copies its cache into its rows; each row
then draws its first token from the shared logits with its own random key, so replies are the
ones a per-row prefill gives. Here: which rows share, and the copy (a gather along the row axis).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from w4s_jax.models.kv_cache import KVCache
from w4s_jax.sampling.decode_state import SampleRow


def distinct_prompts(rows: Sequence[SampleRow]) -> tuple[list[int], list[int]]:
    """(firsts, sources): `firsts` = the row index of each distinct prompt's first occurrence, in
    order; `sources[r]` = which of them row r's prompt is."""
    index: dict[tuple[int, ...], int] = {}
    firsts, sources = [], []
    for r, row in enumerate(rows):
        key = tuple(row.prompt)
        if key not in index:
            index[key] = len(firsts)
            firsts.append(r)
        sources.append(index[key])
    return firsts, sources


def row_sources(sources: Sequence[int], batch: int, distinct_batch: int) -> np.ndarray:
    """int32 [batch]: the prefilled row each of `batch` rows copies. Batch padding rows copy a padding
    row of the distinct batch when it has one (as a per-row prefill would give them), else row 0:
    either way they are empty rows (done from the start) whose cache nothing reads."""
    distinct = max(sources) + 1
    out = np.full(batch, distinct if distinct < distinct_batch else 0, np.int32)
    out[: len(sources)] = sources
    return out


def fan_out(cache: KVCache, sources: jax.Array) -> KVCache:
    """`cache` with row i = row sources[i] of the given one (keys, values and segment ids)."""
    take = lambda x: jnp.take(x, sources, axis=0)  # noqa: E731
    return KVCache(layers=jax.tree.map(take, cache.layers), segment_ids=take(cache.segment_ids), end=cache.end)
