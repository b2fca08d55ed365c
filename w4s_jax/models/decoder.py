"""Flax NNX decoder for the Llama and Qwen2 families (RMSNorm, RoPE, GQA, SwiGLU).

Projections are einsums over named dims (d = embed, h = heads, k = kv heads, g = heads per kv
head, e = head dim, f = mlp, v = vocab); every parameter carries `logical_axes` metadata that
`w4s_jax.parallel.sharding` maps to mesh axes. With `scan_layers` the layers' parameters are
stacked on a leading "layers" axis and run under `jax.lax.scan`, so compile time does not grow
with depth; otherwise they are a plain list.

Attention follows one rule everywhere (training, prefill, decode): query slot q attends key
slot k iff k <= q, segment_ids[k] == segment_ids[q] != 0, and (branch_ids[k] == 0 or
branch_ids[k] == branch_ids[q]); RoPE uses the explicit positions. Branch ids (0 without them) let
one row hold a shared prefix (the trunk, branch 0) once, followed by several continuations that
each see the trunk and themselves but never each other (RLAO's m candidates of one turn).

A caller may rewrite each layer's weights inside the layer loop (`LayerTransform`, e.g. LoRA's
W + A @ B), so a derived model is built one layer at a time under the layer's rematerialisation
instead of as a whole second copy whose gradient is as large as the model.

Each layer's Attention takes its own `LayerCache` and returns the updated one with its output, so
the cache flows through the layers as data; the attention itself runs in query blocks with a
hand-written backward pass (`w4s_jax.models.blocked_attention`). Modules run under
`jax.named_scope`, so profiles and HLO dumps say which part of the model an op belongs to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from w4s_jax.models.blocked_attention import blocked_attention
from w4s_jax.models.config import ModelConfig
from w4s_jax.models.kv_cache import KVCache, LayerCache
from w4s_jax.parallel.sharding import constrain

__all__ = [
    "MLP",
    "Attention",
    "Decoder",
    "DecoderLayer",
    "KVCache",
    "LayerCache",
    "LayerTransform",
    "RMSNorm",
    "Rope",
    "abstract_model",
    "rope_inv_freq",
]

_WEIGHT_STD = 0.02  # transformers' default initializer_range


def _param(
    rngs: nnx.Rngs | None,
    shape: tuple[int, ...],
    axes: tuple[str, ...],
    dtype: jnp.dtype,
    num_stacked: int | None,
    init: str = "normal",
) -> nnx.Param:
    """A parameter with logical axes; `num_stacked` prepends a "layers" axis for scanned layers."""
    if num_stacked is not None:
        shape, axes = (num_stacked, *shape), ("layers", *axes)
    if init == "normal":
        # Drawn in float32 then cast: one seed gives the same model whatever the param dtype.
        value = (_WEIGHT_STD * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)
    elif init == "ones":
        value = jnp.ones(shape, dtype)
    else:
        value = jnp.zeros(shape, dtype)
    return nnx.Param(value, logical_axes=axes)


class RMSNorm(nnx.Module):
    """Root-mean-square norm computed in float32, scaled in the compute dtype (as transformers)."""

    def __init__(self, dim: int, eps: float, param_dtype: jnp.dtype, num_stacked: int | None = None):
        self.scale = _param(None, (dim,), ("norm",), param_dtype, num_stacked, init="ones")
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        with jax.named_scope("rms_norm"):
            x32 = x.astype(jnp.float32)
            normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
            return normed.astype(x.dtype) * self.scale.get_value().astype(x.dtype)


def rope_inv_freq(config: ModelConfig) -> np.ndarray:
    """Inverse RoPE frequencies [Dh/2], with Llama-3.1 ("llama3") scaling when configured."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    scaling = config.rope_scaling
    if scaling is not None:
        low_wavelen = scaling.original_max_position / scaling.low_freq_factor
        high_wavelen = scaling.original_max_position / scaling.high_freq_factor
        wavelen = 2 * np.pi / inv_freq
        scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
        smooth = (scaling.original_max_position / wavelen - scaling.low_freq_factor) / (
            scaling.high_freq_factor - scaling.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv_freq = np.where(is_medium, smoothed, scaled)
    return inv_freq.astype(np.float32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Rope:
    """cos and sin [B, T, 1, Dh] of the rotary angles at one call's positions, computed once per call
    and shared by every layer (half-split layout, as transformers)."""

    cos: jax.Array
    sin: jax.Array

    @classmethod
    def at(cls, positions: jax.Array, config: ModelConfig, dtype: jnp.dtype) -> Rope:
        angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(rope_inv_freq(config))  # [B, T, Dh/2]
        angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
        return cls(jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype))

    def apply(self, x: jax.Array) -> jax.Array:
        """Rotates x [B, T, H, Dh]."""
        half = x.shape[-1] // 2
        rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * self.cos + rotated * self.sin


def attention_mask(
    q_slots: jax.Array,
    q_segments: jax.Array,
    k_segments: jax.Array,
    q_branches: jax.Array | None = None,
    k_branches: jax.Array | None = None,
) -> jax.Array:
    """[B, T, S] boolean: the decoder's one attention rule over key slots 0..S-1 (module doc)."""
    k_slots = jnp.arange(k_segments.shape[1])
    causal = k_slots[None, None, :] <= q_slots[:, :, None]
    same = k_segments[:, None, :] == q_segments[:, :, None]
    mask = causal & same & (q_segments[:, :, None] != 0)
    if q_branches is not None:
        k_branch = k_branches[:, None, :]
        mask = mask & ((k_branch == 0) | (k_branch == q_branches[:, :, None]))
    return mask


class Attention(nnx.Module):
    """Grouped-query attention with optional q/k/v bias (Qwen2); takes and returns its layer's cache."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs, num_stacked: int | None = None):
        c, pd = config, jnp.dtype(config.param_dtype)
        self.q_proj = _param(rngs, (c.hidden_size, c.num_heads, c.head_dim), ("embed", "heads", "head_dim"), pd, num_stacked)
        kv_shape, kv_axes = (c.hidden_size, c.num_kv_heads, c.head_dim), ("embed", "kv_heads", "head_dim")
        self.k_proj = _param(rngs, kv_shape, kv_axes, pd, num_stacked)
        self.v_proj = _param(rngs, kv_shape, kv_axes, pd, num_stacked)
        self.o_proj = _param(rngs, (c.num_heads, c.head_dim, c.hidden_size), ("heads", "head_dim", "embed"), pd, num_stacked)
        if c.qkv_bias:
            self.q_bias = _param(None, (c.num_heads, c.head_dim), ("heads", "head_dim"), pd, num_stacked, "zeros")
            self.k_bias = _param(None, (c.num_kv_heads, c.head_dim), ("kv_heads", "head_dim"), pd, num_stacked, "zeros")
            self.v_bias = _param(None, (c.num_kv_heads, c.head_dim), ("kv_heads", "head_dim"), pd, num_stacked, "zeros")
        self.config = config

    def _project(self, x: jax.Array, name: str) -> jax.Array:
        dtype = x.dtype
        out = jnp.einsum("btd,dhe->bthe", x, getattr(self, f"{name}_proj").get_value().astype(dtype))
        if self.config.qkv_bias:
            out = out + getattr(self, f"{name}_bias").get_value().astype(dtype)
        return out

    def __call__(
        self,
        x: jax.Array,
        rope: Rope,
        mask: jax.Array,
        cache: LayerCache | None = None,
        cache_end: jax.Array | None = None,
    ) -> tuple[jax.Array, LayerCache | None]:
        """(out [B, T, D], new cache). `mask` [B, T, S] is over key slots: the call's own T tokens
        without a cache, the cache's S slots with one (this call's keys/values written at
        [cache_end, cache_end + T) first)."""
        c = self.config
        with jax.named_scope("attention"):
            q = rope.apply(self._project(x, "q"))
            k = rope.apply(self._project(x, "k")).swapaxes(1, 2)  # [B, K, T, E]
            v = self._project(x, "v").swapaxes(1, 2)
            q = constrain(q, ("act_batch", "act_length", "act_heads", "head_dim"))
            if cache is not None:
                cache = cache.write(k, v, cache_end)
                k, v = cache.k, cache.v
            batch, length = q.shape[:2]
            q = q.reshape(batch, length, c.num_kv_heads, c.num_heads // c.num_kv_heads, c.head_dim)
            k, v = k.astype(q.dtype), v.astype(q.dtype)
            out = blocked_attention(q, k, v, mask, c.attention_chunk, cache is None)
            # One contracted dim (heads x head_dim) on both sides: contracting the two dims as they
            # are let XLA lay the attention output out (head_dim, heads) and transpose the weight to
            # match, once per layer per decode step (tests/test_sampling_sampler.py).
            out = out.reshape(batch, length, c.num_heads * c.head_dim)
            o_proj = self.o_proj.get_value().astype(out.dtype)
            return jnp.einsum("btf,fd->btd", out, o_proj.reshape(-1, o_proj.shape[-1])), cache


class MLP(nnx.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs, num_stacked: int | None = None):
        c, pd = config, jnp.dtype(config.param_dtype)
        self.gate_proj = _param(rngs, (c.hidden_size, c.intermediate_size), ("embed", "mlp"), pd, num_stacked)
        self.up_proj = _param(rngs, (c.hidden_size, c.intermediate_size), ("embed", "mlp"), pd, num_stacked)
        self.down_proj = _param(rngs, (c.intermediate_size, c.hidden_size), ("mlp", "embed"), pd, num_stacked)

    def __call__(self, x: jax.Array) -> jax.Array:
        with jax.named_scope("mlp"):
            dtype = x.dtype
            gate = jnp.einsum("btd,df->btf", x, self.gate_proj.get_value().astype(dtype))
            up = jnp.einsum("btd,df->btf", x, self.up_proj.get_value().astype(dtype))
            hidden = constrain(jax.nn.silu(gate) * up, ("act_batch", "act_length", "act_mlp"))
            return jnp.einsum("btf,fd->btd", hidden, self.down_proj.get_value().astype(dtype))


class DecoderLayer(nnx.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs, num_stacked: int | None = None):
        pd = jnp.dtype(config.param_dtype)
        self.input_norm = RMSNorm(config.hidden_size, config.rms_eps, pd, num_stacked)
        self.attn = Attention(config, rngs, num_stacked)
        self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_eps, pd, num_stacked)
        self.mlp = MLP(config, rngs, num_stacked)

    def __call__(
        self,
        x: jax.Array,
        rope: Rope,
        mask: jax.Array,
        cache: LayerCache | None = None,
        cache_end: jax.Array | None = None,
    ) -> tuple[jax.Array, LayerCache | None]:
        with jax.named_scope("decoder_layer"):
            attended, cache = self.attn(self.input_norm(x), rope, mask, cache, cache_end)
            x = x + attended
            x = x + self.mlp(self.post_attn_norm(x))
            return constrain(x, ("act_batch", "act_length", "act_embed")), cache


@dataclasses.dataclass(frozen=True)
class LayerTransform:
    """Rewrites one layer's parameters before the layer runs: `fn(layer params as a pure dict, this
    layer's slice of `per_layer`) -> layer params`. `per_layer` is a pytree whose leaves have a
    leading axis of length num_layers (scanned with the layers)."""

    fn: Callable[[dict, object], dict]
    per_layer: object


def _transformed(state: nnx.State, transform: LayerTransform | None, extra: object) -> nnx.State:
    if transform is None:
        return state
    state = jax.tree.map(lambda x: x, state)
    nnx.replace_by_pure_dict(state, transform.fn(nnx.to_pure_dict(state), extra))
    return state


def _remat(fn: Callable, policy_name: str) -> Callable:
    if policy_name == "none":
        return fn
    policies = {
        "full": None,
        "dots_saveable": jax.checkpoint_policies.dots_saveable,
        "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    }
    return jax.checkpoint(fn, policy=policies[policy_name], prevent_cse=False)


class Decoder(nnx.Module):
    """The decoder-only transformer; see the module docstring for the attention rule."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c, pd = config, jnp.dtype(config.param_dtype)
        self.config = config
        self.embedding = _param(rngs, (c.vocab_size, c.hidden_size), ("vocab", "embed"), pd, None)
        if c.scan_layers:
            self.layers = DecoderLayer(c, rngs, num_stacked=c.num_layers)
        else:
            self.layers = nnx.List([DecoderLayer(c, rngs) for _ in range(c.num_layers)])
        self.final_norm = RMSNorm(c.hidden_size, c.rms_eps, pd)
        if not c.tie_embeddings:
            self.lm_head = _param(rngs, (c.hidden_size, c.vocab_size), ("embed", "vocab"), pd, None)

    def hidden_states(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        segment_ids: jax.Array,
        cache: KVCache | None = None,
        branch_ids: jax.Array | None = None,
        layer_transform: LayerTransform | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Final-norm hidden states [B, T, D] (compute dtype) and the updated cache.

        `branch_ids` (int32 [B, T], training only): 0 = trunk, i > 0 = branch i; a query also needs
        its key to be on the trunk or on its own branch (shared-prefix packing, module doc).
        `layer_transform` rewrites each layer's parameters inside the layer loop (module doc)."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        segment_ids = segment_ids.astype(jnp.int32)
        length = tokens.shape[1]
        with jax.named_scope("embed"):
            x = jnp.take(self.embedding.get_value(), tokens, axis=0).astype(dtype)
            x = constrain(x, ("act_batch", "act_length", "act_embed"))
        rope = Rope.at(positions, c, dtype)
        if cache is None:
            q_slots = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), tokens.shape)
            k_segments, end = segment_ids, None
        else:
            if branch_ids is not None:
                raise ValueError("branch_ids: a KV cache keeps no branches; pass branch_ids only without a cache")
            end = cache.end
            q_slots = jnp.broadcast_to(end + jnp.arange(length, dtype=jnp.int32), tokens.shape)
            k_segments = jax.lax.dynamic_update_slice(cache.segment_ids, segment_ids, (0, end))
        branches = None if branch_ids is None else branch_ids.astype(jnp.int32)
        mask = attention_mask(q_slots, segment_ids, k_segments, branches, branches)
        layer_caches = None if cache is None else cache.layers

        if c.scan_layers:
            graphdef, layer_state = nnx.split(self.layers)

            def body(x, xs):
                state, layer_cache, extra = xs
                state = _transformed(state, layer_transform, extra)
                return nnx.merge(graphdef, state)(x, rope, mask, layer_cache, end)

            stacked = None if layer_caches is None else jax.tree.map(lambda *a: jnp.stack(a), *layer_caches)
            per_layer = None if layer_transform is None else layer_transform.per_layer
            x, stacked = jax.lax.scan(_remat(body, c.remat), x, (layer_state, stacked, per_layer))
            if stacked is not None:
                layer_caches = tuple(jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(c.num_layers))
        else:
            new_caches = []
            for index, layer in enumerate(self.layers):
                layer_cache = None if layer_caches is None else layer_caches[index]
                extra = None if layer_transform is None else jax.tree.map(lambda a, i=index: a[i], layer_transform.per_layer)

                def step(x, lc, extra, layer=layer):
                    if layer_transform is not None:
                        graphdef, state = nnx.split(layer)
                        layer = nnx.merge(graphdef, _transformed(state, layer_transform, extra))
                    return layer(x, rope, mask, lc, end)

                x, layer_cache = _remat(step, c.remat)(x, layer_cache, extra)
                new_caches.append(layer_cache)
            layer_caches = None if cache is None else tuple(new_caches)
        h = self.final_norm(x)
        if cache is not None:
            cache = KVCache(layers=layer_caches, segment_ids=k_segments, end=end + length)
        return h, cache

    def logits(self, h: jax.Array) -> jax.Array:
        """float32 logits [B, T, V] from hidden states (tied or untied head)."""
        with jax.named_scope("lm_head"):
            if self.config.tie_embeddings:
                weight = self.embedding.get_value().astype(h.dtype)
                out = jnp.einsum("btd,vd->btv", h, weight, preferred_element_type=jnp.float32)
            else:
                weight = self.lm_head.get_value().astype(h.dtype)
                out = jnp.einsum("btd,dv->btv", h, weight, preferred_element_type=jnp.float32)
            return constrain(out, ("act_batch", "act_length", "act_vocab"))

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        segment_ids: jax.Array,
        cache: KVCache | None = None,
        branch_ids: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        h, cache = self.hidden_states(tokens, positions, segment_ids, cache, branch_ids)
        return self.logits(h), cache


def abstract_model(config: ModelConfig) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, abstract state) of a Decoder, without allocating parameters; `state_shardings`
    of the abstract state gives each parameter's NamedSharding on a mesh."""
    return nnx.split(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))))
