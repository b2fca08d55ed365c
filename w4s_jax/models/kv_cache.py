"""`KVCache`: per-layer keys/values by slot, with the segment id of each slot.

Slots follow the one attention rule of the decoder (docs/interfaces.md): a query at slot q sees
key slot k iff k <= q and both carry the same non-zero segment id, so a cache needs no separate
length or padding mask: empty slots have segment id 0 and are never seen.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from w4s_jax.models.config import ModelConfig
from w4s_jax.parallel.sharding import logical_to_spec

KV_AXES = ("layers", "act_batch", "cache_length", "act_kv_heads", "head_dim")
SEGMENT_AXES = ("act_batch", "cache_length")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """k, v: [L, B, S, Hkv, Dh]; segment_ids: int32 [B, S] (0 = empty); end: int32 [] (next slot)."""

    k: jax.Array
    v: jax.Array
    segment_ids: jax.Array
    end: jax.Array

    @classmethod
    def init(cls, config: ModelConfig, batch: int, max_len: int, dtype: str | jnp.dtype | None = None) -> KVCache:
        """An empty cache of `max_len` slots (dtype defaults to the model's compute dtype)."""
        dtype = jnp.dtype(dtype or config.dtype)
        shape = (config.num_layers, batch, max_len, config.num_kv_heads, config.head_dim)
        return cls(
            k=jnp.zeros(shape, dtype),
            v=jnp.zeros(shape, dtype),
            segment_ids=jnp.zeros((batch, max_len), jnp.int32),
            end=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.k.shape[2]


def kv_cache_shardings(cache: KVCache, mesh: Mesh) -> KVCache:
    """NamedShardings for a cache (batch over data/fsdp, kv heads over tensor), for jit in/out."""
    return KVCache(
        k=NamedSharding(mesh, logical_to_spec(KV_AXES, cache.k.shape, mesh)),
        v=NamedSharding(mesh, logical_to_spec(KV_AXES, cache.v.shape, mesh)),
        segment_ids=NamedSharding(mesh, logical_to_spec(SEGMENT_AXES, cache.segment_ids.shape, mesh)),
        end=NamedSharding(mesh, logical_to_spec(())),
    )
