"""The RLAO loss against a numpy reference on a hand-packed batch with masks and weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w4s_jax.rlao.examples import Example
from w4s_jax.rlao.loss import loss_sums, num_examples, token_nll
from w4s_jax.rlao.shared_prefix import example_features

VOCAB, DIM, SEQ = 11, 6, 12


def _example(ids, mask, weight, name):
    return Example(np.asarray(ids, np.int32), np.asarray(mask, np.int32), weight, name, group=name)


EXAMPLES = [
    _example([1, 4, 5, 2, 7, 3], [0, 0, 0, 1, 1, 1], 2.5, "a"),
    _example([1, 9, 6, 8], [0, 0, 1, 1], 0.3, "b"),
    _example([1, 3, 3, 3, 5, 10, 2, 4, 6], [0, 0, 0, 0, 0, 1, 1, 1, 1], 1.0, "c"),
]
ROWS = [[0, 1], [2]]  # examples a and b packed in row 0, c alone in row 1 (then padding)


def _packed_batch():
    batch = {k: np.zeros((len(ROWS), SEQ), np.float32 if k in ("target_scale", "example_weight") else np.int32)
             for k in ("inputs", "targets", "positions", "segment_ids", "target_scale", "example_weight")}
    for r, row in enumerate(ROWS):
        start = 0
        for seg, i in enumerate(row, start=1):
            f = example_features(EXAMPLES[i])
            n = len(f["inputs"])
            for key, value in f.items():
                batch[key][r, start : start + n] = value
            batch["positions"][r, start : start + n] = np.arange(n)
            batch["segment_ids"][r, start : start + n] = seg
            start += n
    return batch


def _numpy_reference(embed, proj):
    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    total, plain = 0.0, 0.0
    for ex in EXAMPLES:
        logp = log_softmax(embed[ex.ids[:-1]] @ proj)
        nll = -logp[np.arange(len(ex.ids) - 1), ex.ids[1:]]
        target = ex.loss_mask[1:].astype(bool)
        total += ex.weight * nll[target].mean()
        plain += nll[target].mean()
    return total / len(EXAMPLES), plain / len(EXAMPLES)


@pytest.mark.parametrize("chunk", [0, 3, 4, 12])
def test_weighted_loss_matches_numpy(chunk):
    rng = np.random.default_rng(0)
    embed = rng.normal(size=(VOCAB, DIM)).astype(np.float64)
    proj = rng.normal(size=(DIM, VOCAB)).astype(np.float64)
    batch = _packed_batch()
    h = jnp.asarray(embed[batch["inputs"]], jnp.float32)
    nll = token_nll(h, jnp.asarray(batch["targets"]), lambda x: x @ jnp.asarray(proj, jnp.float32), chunk)
    sums = loss_sums(nll, jnp.asarray(batch["target_scale"]), jnp.asarray(batch["example_weight"]))
    n = num_examples(jnp.asarray(batch["target_scale"]))
    expected_loss, expected_plain = _numpy_reference(embed, proj)
    assert float(n) == len(EXAMPLES)
    np.testing.assert_allclose(float(sums["weighted_nll"] / n), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(sums["plain_nll"] / n), expected_plain, rtol=1e-5)
    np.testing.assert_allclose(float(sums["weight"] / n), np.mean([e.weight for e in EXAMPLES]), rtol=1e-6)
    assert float(sums["target_tokens"]) == sum(int(e.loss_mask[1:].sum()) for e in EXAMPLES)


def test_weights_get_no_gradient_and_padding_is_ignored():
    rng = np.random.default_rng(1)
    batch = _packed_batch()
    h = jnp.asarray(rng.normal(size=(*batch["inputs"].shape, DIM)), jnp.float32)
    proj = jnp.asarray(rng.normal(size=(DIM, VOCAB)), jnp.float32)

    def loss(weights, h):
        nll = token_nll(h, jnp.asarray(batch["targets"]), lambda x: x @ proj, 4)
        return loss_sums(nll, jnp.asarray(batch["target_scale"]), weights)["weighted_nll"]

    g_weights, g_h = jax.grad(loss, argnums=(0, 1))(jnp.asarray(batch["example_weight"]), h)
    assert not np.any(np.asarray(g_weights))
    padding = batch["segment_ids"] == 0
    assert padding.any() and not np.any(np.asarray(g_h)[padding])
