"""Decoder behaviour on the tiny preset: KV cache, scanned vs list layers, packing, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mesh_of, requires_devices
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from w4s_jax.models.decoder import Decoder, KVCache
from w4s_jax.models.weights import load_model


def jitted_forward(model: Decoder):
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, tokens, positions, segment_ids):
        return nnx.merge(graphdef, state)(tokens, positions, segment_ids)[0]

    return lambda tokens, positions, segment_ids: forward(state, tokens, positions, segment_ids)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    config, model = tiny_model
    return config, model, jitted_forward(model)


def left_padded_batch(config, rng: np.random.Generator, lengths=(7, 12), total=12):
    """Tokens/positions/segments for rows left-padded to `total` (segment 0 = padding)."""
    tokens = rng.integers(0, config.vocab_size, (len(lengths), total))
    positions = np.zeros_like(tokens)
    segments = np.zeros_like(tokens)
    for row, n in enumerate(lengths):
        positions[row, total - n :] = np.arange(n)
        segments[row, total - n :] = 1
    return jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(segments, jnp.int32)


@requires_devices(8)
def test_random_init_is_sharded_by_logical_axes():
    mesh = mesh_of(2, 2, 2)
    _, model = load_model("tiny", "", mesh=mesh)
    state = nnx.state(model)
    assert model.layers.attn.q_proj.get_value().sharding == NamedSharding(mesh, PartitionSpec(None, "fsdp", "tensor"))
    assert state["embedding"].get_value().sharding == NamedSharding(mesh, PartitionSpec("tensor", "fsdp"))
    assert model.layers.mlp.down_proj.get_value().sharding == NamedSharding(mesh, PartitionSpec(None, "tensor", "fsdp"))


def test_kv_cache_prefill_then_decode_matches_full_forward(tiny):
    config, model, forward = tiny
    tokens, positions, segments = left_padded_batch(config, np.random.default_rng(0))
    full = forward(tokens, positions, segments)
    graphdef, state = nnx.split(model)

    @jax.jit
    def step(state, cache, tokens, positions, segments):
        return nnx.merge(graphdef, state)(tokens, positions, segments, cache)

    cache = KVCache.init(config, batch=2, max_len=16)
    prefill = 8
    logits, cache = step(state, cache, tokens[:, :prefill], positions[:, :prefill], segments[:, :prefill])
    pieces = [logits]
    for t in range(prefill, tokens.shape[1]):
        logits, cache = step(state, cache, tokens[:, t : t + 1], positions[:, t : t + 1], segments[:, t : t + 1])
        pieces.append(logits)
    stepped = jnp.concatenate(pieces, axis=1)
    assert int(cache.end) == tokens.shape[1]
    real = np.asarray(segments) != 0
    np.testing.assert_allclose(np.asarray(stepped)[real], np.asarray(full)[real], atol=1e-5, rtol=0)


def test_scanned_and_list_layers_give_the_same_logits(tiny):
    config, model, forward = tiny
    list_model = Decoder(config.replace(scan_layers=False), rngs=nnx.Rngs(99))
    stacked = nnx.state(model.layers)
    for index, layer in enumerate(list_model.layers):
        nnx.update(layer, jax.tree.map(lambda leaf, i=index: leaf[i], stacked))
    nnx.update(list_model, nnx.state(model, nnx.Not(nnx.PathContains("layers"))))
    tokens, positions, segments = left_padded_batch(config, np.random.default_rng(1))
    expected = forward(tokens, positions, segments)
    got = jitted_forward(list_model)(tokens, positions, segments)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5, rtol=0)


def test_packed_segments_equal_separate_sequences(tiny):
    config, _, forward = tiny
    rng = np.random.default_rng(2)
    first, second = rng.integers(0, config.vocab_size, 5), rng.integers(0, config.vocab_size, 6)
    packed = jnp.asarray(np.concatenate([first, second, [0]])[None])
    positions = jnp.asarray(np.concatenate([np.arange(5), np.arange(6), [0]])[None])
    segments = jnp.asarray(np.array([[1] * 5 + [2] * 6 + [0]], np.int32))
    packed_logits = np.asarray(forward(packed, positions, segments))[0]
    for seq, start in ((first, 0), (second, 5)):
        n = len(seq)
        alone = forward(jnp.asarray(seq[None]), jnp.arange(n)[None], jnp.ones((1, n), jnp.int32))
        np.testing.assert_allclose(packed_logits[start : start + n], np.asarray(alone)[0], atol=1e-5, rtol=0)


def test_remat_policies_keep_logits_and_gradients(tiny):
    config, model, _ = tiny
    tokens, positions, segments = left_padded_batch(config, np.random.default_rng(4))
    graphdef, state = nnx.split(model)

    def loss(state, graphdef):
        decoder = nnx.merge(graphdef, state)
        h, _ = decoder.hidden_states(tokens, positions, segments)
        logits = decoder.logits(h)
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[..., 0])

    value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    expected = value_and_grad(state, graphdef)
    for remat in ("full", "dots_with_no_batch_dims_saveable"):
        remat_graphdef, _ = nnx.split(Decoder(config.replace(remat=remat), rngs=nnx.Rngs(0)))
        got = value_and_grad(state, remat_graphdef)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
        for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(expected[1])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("chunk", [4, 5])  # T = 12: three equal blocks, or 5 + 5 + 2
def test_chunked_attention_matches_full_attention_with_gradients(tiny, chunk):
    config, model, _ = tiny
    tokens, positions, segments = left_padded_batch(config, np.random.default_rng(5))
    state = nnx.state(model)
    chunked_graphdef, _ = nnx.split(Decoder(config.replace(attention_chunk=chunk), rngs=nnx.Rngs(0)))
    full_graphdef, _ = nnx.split(Decoder(config.replace(attention_chunk=0), rngs=nnx.Rngs(0)))

    def loss(state, graphdef):
        logits, _ = nnx.merge(graphdef, state)(tokens, positions, segments)
        return jnp.sum(jnp.where(segments[..., None] != 0, logits, 0.0) ** 2), logits

    grad = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
    full_grads, full_logits = grad(state, full_graphdef)
    chunked_grads, chunked_logits = grad(state, chunked_graphdef)
    np.testing.assert_allclose(np.asarray(chunked_logits), np.asarray(full_logits), atol=1e-5, rtol=0)
    for a, b in zip(jax.tree.leaves(chunked_grads), jax.tree.leaves(full_grads)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_branches_see_the_trunk_and_themselves_only(tiny):
    """One row = trunk + two branches (positions continuing from the trunk), then a second segment:
    each branch's logits equal those of trunk + that branch run alone; the trunk's equal the trunk's."""
    config, model, _ = tiny
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, *args: nnx.merge(graphdef, state)(*args)[0])
    rng = np.random.default_rng(6)
    trunk, first, second, other = (rng.integers(0, config.vocab_size, n) for n in (5, 3, 4, 3))
    tokens = np.concatenate([trunk, first, second, other, [0]])[None]
    positions = np.concatenate([np.arange(5), 5 + np.arange(3), 5 + np.arange(4), np.arange(3), [0]])[None]
    segments = np.array([[1] * 12 + [2] * 3 + [0]], np.int32)
    branches = np.array([[0] * 5 + [1] * 3 + [2] * 4 + [0] * 3 + [0]], np.int32)
    packed = np.asarray(forward(state, tokens, positions, segments, None, branches))[0]

    def alone(sequence):
        n = len(sequence)
        return np.asarray(forward(state, sequence[None], np.arange(n)[None], np.ones((1, n), np.int32), None, None))[0]

    np.testing.assert_allclose(packed[:8], alone(np.concatenate([trunk, first])), atol=1e-5, rtol=0)
    np.testing.assert_allclose(packed[8:12], alone(np.concatenate([trunk, second]))[5:], atol=1e-5, rtol=0)
    np.testing.assert_allclose(packed[12:15], alone(other), atol=1e-5, rtol=0)
