"""The RLAO loss: reward-weighted mean token NLL, with logits computed chunk by chunk.

loss = sum_e w_e * mean_token_nll_e / num_examples   (DESIGN section 1; weights are constants)

The per-token features from the pipeline (`target_scale`, `example_weight`) turn this into sums over
tokens, so the step can add micro-batches and divide once by the global example count. The [B, T, V]
logits are never materialised: a rematerialised scan over sequence chunks computes each chunk's
logits, its log-sum-exp and the target logit, and the backward pass recomputes them per chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

LogitsFn = Callable[[jax.Array], jax.Array]


def _chunk_nll(logits_fn: LogitsFn, h: jax.Array, targets: jax.Array) -> jax.Array:
    """Token NLL for one chunk: logsumexp(logits) - logit[target], in float32."""
    logits = logits_fn(h).astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    # A one-hot contraction (not a gather) keeps a vocab-sharded logits array sharded.
    target_logit = jnp.einsum("btv,btv->bt", logits, jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype))
    return log_z - target_logit


def token_nll(h: jax.Array, targets: jax.Array, logits_fn: LogitsFn, chunk: int) -> jax.Array:
    """NLL [B, T] of `targets` under `logits_fn(h)`, computed `chunk` positions at a time."""
    batch, length = targets.shape
    chunk = min(chunk, length) if chunk > 0 else length
    if length % chunk:
        raise ValueError(f"train.logits_chunk: {chunk} must divide the sequence length {length}")
    n = length // chunk
    h_chunks = h.reshape(batch, n, chunk, h.shape[-1]).swapaxes(0, 1)
    t_chunks = targets.reshape(batch, n, chunk).swapaxes(0, 1)
    body = jax.checkpoint(lambda hc, tc: _chunk_nll(logits_fn, hc, tc))

    def step(carry, xs):
        return carry, body(*xs)

    _, nll = jax.lax.scan(step, None, (h_chunks, t_chunks))
    return nll.swapaxes(0, 1).reshape(batch, length)


def loss_sums(nll: jax.Array, target_scale: jax.Array, example_weight: jax.Array) -> dict[str, jax.Array]:
    """Sums over tokens that add up across micro-batches (weights get no gradient)."""
    scale = jax.lax.stop_gradient(target_scale.astype(jnp.float32))
    weight = jax.lax.stop_gradient(example_weight.astype(jnp.float32))
    return {
        "weighted_nll": jnp.sum(weight * scale * nll),
        "plain_nll": jnp.sum(scale * nll),
        "weight": jnp.sum(weight * scale),
        "target_tokens": jnp.sum((scale > 0).astype(jnp.float32)),
    }


def num_examples(target_scale: jax.Array) -> jax.Array:
    """Examples in a batch: target_scale sums to exactly 1 per example, so round the total."""
    return jnp.maximum(jnp.round(jnp.sum(target_scale.astype(jnp.float32))), 1.0)
