"""`KVCache`: each layer's keys/values by slot, with the segment id of each slot.

Slots follow the one attention rule of the decoder (docs/interfaces.md): a query at slot q sees
key slot k iff k <= q and both carry the same non-zero segment id, so a cache needs no separate
length or padding mask: empty slots have segment id 0 and are never seen.

Keys and values are laid out [B, Hkv, S, Dh] (heads before slots): attention contracts them with
(batch, kv head) as the batch dimensions, so a decode step reads the cache as it lies, with no
transpose of the whole cache per step. Each layer owns its arrays (a tuple, one entry per layer):
a layer's update is an in-place write into its own buffer, never a slice out of a stacked one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from w4s_jax.models.config import ModelConfig
from w4s_jax.parallel.sharding import logical_to_spec

KV_AXES = ("act_batch", "act_kv_heads", "cache_length", "head_dim")
SEGMENT_AXES = ("act_batch", "cache_length")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LayerCache:
    """One layer's keys and values, [B, Hkv, S, Dh] each."""

    k: jax.Array
    v: jax.Array

    def write(self, k: jax.Array, v: jax.Array, start: jax.Array) -> LayerCache:
        """The cache with new keys/values [B, Hkv, T, Dh] stored at slots [start, start + T)."""
        at = (0, 0, start, 0)
        return LayerCache(
            k=jax.lax.dynamic_update_slice(self.k, k.astype(self.k.dtype), at),
            v=jax.lax.dynamic_update_slice(self.v, v.astype(self.v.dtype), at),
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """layers: one LayerCache per decoder layer; segment_ids: int32 [B, S] (0 = empty); end: int32 [] (next slot)."""

    layers: tuple[LayerCache, ...]
    segment_ids: jax.Array
    end: jax.Array

    @classmethod
    def init(cls, config: ModelConfig, batch: int, max_len: int, dtype: str | jnp.dtype | None = None) -> KVCache:
        """An empty cache of `max_len` slots (dtype defaults to the model's compute dtype)."""
        dtype = jnp.dtype(dtype or config.dtype)
        shape = (batch, config.num_kv_heads, max_len, config.head_dim)
        return cls(
            layers=tuple(LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(config.num_layers)),
            segment_ids=jnp.zeros((batch, max_len), jnp.int32),
            end=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.segment_ids.shape[1]


def kv_cache_shardings(cache: KVCache, mesh: Mesh) -> KVCache:
    """NamedShardings for a cache (batch over data/fsdp, kv heads over tensor), for jit in/out."""

    def kv(x: jax.Array) -> NamedSharding:
        return NamedSharding(mesh, logical_to_spec(KV_AXES, x.shape, mesh))

    return KVCache(
        layers=tuple(LayerCache(kv(layer.k), kv(layer.v)) for layer in cache.layers),
        segment_ids=NamedSharding(mesh, logical_to_spec(SEGMENT_AXES, cache.segment_ids.shape, mesh)),
        end=NamedSharding(mesh, logical_to_spec(())),
    )
