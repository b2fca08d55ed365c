"""Blocked attention (hand-written backward) against a plain softmax attention and its autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w4s_jax.models.blocked_attention import blocked_attention


def reference(q, keys, values, mask):
    """softmax(q k^T / sqrt(E), masked) v, and 0 for a query that sees no key; gradients by autodiff."""
    scores = jnp.einsum("btkge,bkse->bkgts", q, keys) / np.sqrt(q.shape[-1])
    scores = jnp.where(mask[:, None, None], scores, -1e30)
    out = jnp.einsum("bkgts,bkse->btkge", jax.nn.softmax(scores, axis=-1), values)
    return jnp.where(mask.any(-1)[:, :, None, None, None], out, 0.0)


def inputs(causal: bool, seed: int = 0):
    """B=2, T=11 queries, K=2 kv heads of G=3 queries each, E=8; two packed segments, padding, and
    with a cache (not causal) 16 key slots of which the first 5 are an earlier segment-1 prefix."""
    rng = np.random.default_rng(seed)
    length, slots = 11, (11 if causal else 16)
    offset = slots - length
    q = jnp.asarray(rng.normal(size=(2, length, 2, 3, 8)), jnp.float32)
    keys, values = (jnp.asarray(rng.normal(size=(2, 2, slots, 8)), jnp.float32) for _ in range(2))
    q_segments = np.array([[1] * 6 + [2] * 4 + [0], [1] * 9 + [0] * 2])
    k_segments = np.concatenate([np.ones((2, offset), int), q_segments], axis=1)
    q_slots = offset + np.arange(length)
    mask = (np.arange(slots)[None, None] <= q_slots[None, :, None]) & (k_segments[:, None] == q_segments[:, :, None])
    return q, keys, values, jnp.asarray(mask & (q_segments[:, :, None] != 0))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("chunk", [0, 3, 4, 11])
def test_values_and_gradients_match_plain_softmax_attention(causal, chunk):
    """Padding queries (no visible key) included: zero output, no gradient."""
    q, keys, values, mask = inputs(causal)
    d_out = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)

    def vjp(fn):
        out, pullback = jax.vjp(fn, q, keys, values)
        return out, pullback(d_out)

    expected, expected_grads = vjp(lambda q, k, v: reference(q, k, v, mask))
    got, got_grads = jax.jit(lambda: vjp(lambda q, k, v: blocked_attention(q, k, v, mask, chunk, causal)))()
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5, rtol=1e-5)
    for name, a, b in zip(("dq", "dkeys", "dvalues"), got_grads, expected_grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5, err_msg=name)
