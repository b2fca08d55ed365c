"""Masked softmax attention in query blocks, with a hand-written backward pass (flash-style).

Why not `jax.grad` of the plain softmax: on XLA:CPU the autodiff backward of attention spends most
of its time outside the matmuls, in passes over the [T, S] score matrix (the softmax-gradient row
sum, transposes of scores for the key/value gradients); the train step spent more time there than
in the MLPs. Here:
  - queries go in blocks of `chunk`; without a cache (`causal`: query t sits in key slot t) a block
    reads only the keys up to its last query, since the rest are masked: half the work of dense;
  - the forward pass keeps each block's row max and 1 / row sum (a few floats per query), not the
    probabilities, so memory is O(T * chunk) per layer, never O(T * S);
  - the backward pass recomputes a block's probabilities from those statistics and uses
    rowsum(dO * O) instead of rowsum(dP * P) (the same number: sum_s P_s dP_s = dO . O);
  - key/value gradients are summed over blocks in float32.
The mask is the decoder's attention rule ([B, T, S] boolean). A query that sees no key (padding)
gets a zero output and passes no gradient, whatever the block size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def _scores(q: jax.Array, keys: jax.Array, mask: jax.Array) -> jax.Array:
    """Scaled, masked float32 scores [B, K, G, T, S]; q [B, T, K, G, E], keys [B, K, S, E]."""
    scores = jnp.einsum("btkge,bkse->bkgts", q, keys, preferred_element_type=jnp.float32)
    return jnp.where(mask[:, None, None, :, :], scores * (q.shape[-1] ** -0.5), MASK_VALUE)


def _block_forward(q, keys, values, mask):
    """(out [B, T, K, G, E], (row max, 1 / row sum) [B, K, G, T]) of one query block."""
    scores = _scores(q, keys, mask)
    row_max = jnp.max(scores, axis=-1)
    probs = jnp.exp(scores - row_max[..., None])
    inv_sum = jnp.where(row_max > MASK_VALUE, 1.0 / jnp.sum(probs, axis=-1), 0.0)  # 0: no visible key
    out = jnp.einsum("bkgts,bkse->bkgte", probs.astype(q.dtype), values, preferred_element_type=jnp.float32)
    out = out * inv_sum[..., None]
    return jnp.transpose(out, (0, 3, 1, 2, 4)).astype(q.dtype), (row_max, inv_sum)


def _block_backward(q, keys, values, mask, stats, d_out, out_dot):
    """float32 (dq, dkeys, dvalues) of one query block; `out_dot` = rowsum(dO * O) [B, K, G, T]."""
    row_max, inv_sum = stats
    probs = jnp.exp(_scores(q, keys, mask) - row_max[..., None]) * inv_sum[..., None]
    d_probs = jnp.einsum("btkge,bkse->bkgts", d_out, values, preferred_element_type=jnp.float32)
    d_scores = jnp.where(mask[:, None, None, :, :], probs * (d_probs - out_dot[..., None]), 0.0)
    d_scores = (d_scores * (q.shape[-1] ** -0.5)).astype(q.dtype)
    f32 = jnp.float32
    dq = jnp.einsum("bkgts,bkse->btkge", d_scores, keys, preferred_element_type=f32)
    dkeys = jnp.einsum("bkgts,btkge->bkse", d_scores, q, preferred_element_type=f32)
    dvalues = jnp.einsum("bkgts,btkge->bkse", probs.astype(q.dtype), d_out, preferred_element_type=f32)
    return dq, dkeys, dvalues


def _blocks(length: int, chunk: int, keys: int, causal: bool) -> list[tuple[int, int, int]]:
    """(first query, last query + 1, keys read) of each block."""
    chunk = chunk or length
    return [(a, min(a + chunk, length), min(a + chunk, length) if causal else keys) for a in range(0, length, chunk)]


def _forward(q, keys, values, mask, chunk, causal):
    outs, stats = [], []
    for start, stop, seen in _blocks(q.shape[1], chunk, keys.shape[2], causal):
        out, block_stats = _block_forward(
            q[:, start:stop], keys[:, :, :seen], values[:, :, :seen], mask[:, start:stop, :seen]
        )
        outs.append(out)
        stats.append(block_stats)
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)
    return out, stats


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def blocked_attention(
    q: jax.Array, keys: jax.Array, values: jax.Array, mask: jax.Array, chunk: int, causal: bool
) -> jax.Array:
    """Attention of q [B, T, K, G, E] over keys/values [B, K, S, E] under mask [B, T, S] ->
    [B, T, K, G, E], `chunk` queries at a time (0 = one block); `causal`: key slot = query slot."""
    return _forward(q, keys, values, mask, chunk, causal)[0]


def _vjp_forward(q, keys, values, mask, chunk, causal):
    out, stats = _forward(q, keys, values, mask, chunk, causal)
    return out, (q, keys, values, mask, out, stats)


def _vjp_backward(chunk, causal, residuals, d_out):
    q, keys, values, mask, out, stats = residuals
    out_dot = jnp.einsum("btkge,btkge->bkgt", d_out.astype(jnp.float32), out.astype(jnp.float32))
    dqs = []
    dkeys = jnp.zeros(keys.shape, jnp.float32)
    dvalues = jnp.zeros(values.shape, jnp.float32)
    for (start, stop, seen), block_stats in zip(_blocks(q.shape[1], chunk, keys.shape[2], causal), stats):
        dq, dk, dv = _block_backward(
            q[:, start:stop], keys[:, :, :seen], values[:, :, :seen], mask[:, start:stop, :seen],
            block_stats, d_out[:, start:stop], out_dot[..., start:stop],
        )  # fmt: skip
        dqs.append(dq)
        dkeys = dkeys.at[:, :, :seen].add(dk)
        dvalues = dvalues.at[:, :, :seen].add(dv)
    dq = dqs[0] if len(dqs) == 1 else jnp.concatenate(dqs, axis=1)
    return dq.astype(q.dtype), dkeys.astype(keys.dtype), dvalues.astype(values.dtype), None


blocked_attention.defvjp(_vjp_forward, _vjp_backward)
