"""LoRA merged one layer at a time inside the layer loop equals the model merged whole (values and
adapter gradients), scanned or not: the train step's memory saving changes no number."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from w4s_jax.models import get_preset
from w4s_jax.models.decoder import Decoder
from w4s_jax.rlao import lora as lora_lib
from w4s_jax.rlao.settings import LoraConfig

LORA = LoraConfig(rank=4, alpha=8.0)


def _inputs(config, batch=2, length=24):
    tokens = jax.random.randint(jax.random.key(1), (batch, length), 0, config.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(length), (batch, length))
    segments = jnp.ones((batch, length), jnp.int32).at[1, 16:].set(2)
    return tokens, positions, segments


@pytest.mark.parametrize("scan_layers", [True, False])
def test_layer_by_layer_merge_equals_the_whole_merge(scan_layers):
    config = get_preset("tiny").replace(scan_layers=scan_layers)
    graphdef, state = nnx.split(Decoder(config, rngs=nnx.Rngs(0)))
    base = nnx.to_pure_dict(state)
    specs = lora_lib.adapter_specs(state, LORA)
    adapters = lora_lib.init_adapters(specs, LORA, jax.random.key(2))
    # B starts at zero; give it values so the adapters change the model.
    leaves, treedef = jax.tree.flatten(adapters)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    adapters = jax.tree.unflatten(treedef, [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    tokens, positions, segments = _inputs(config)

    def whole(adapters):
        model = nnx.merge(graphdef, lora_lib.merge(base, adapters, specs, LORA))
        h, _ = model.hidden_states(tokens, positions, segments)
        return jnp.mean(model.logits(h) ** 2)

    def by_layer(adapters):
        model = nnx.merge(graphdef, base)
        transform = lora_lib.layer_transform(adapters, specs, LORA, config.num_layers)
        h, _ = model.hidden_states(tokens, positions, segments, layer_transform=transform)
        return jnp.mean(model.logits(h) ** 2)

    value_whole, grads_whole = jax.jit(jax.value_and_grad(whole))(adapters)
    value_layers, grads_layers = jax.jit(jax.value_and_grad(by_layer))(adapters)
    np.testing.assert_allclose(value_layers, value_whole, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9), grads_layers, grads_whole)
    assert all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grads_layers))


def test_adapters_outside_the_layers_are_refused():
    config = get_preset("tiny")
    _, state = nnx.split(Decoder(config, rngs=nnx.Rngs(0)))
    spec = lora_lib.adapter_specs(state, LORA)[0]
    outside = lora_lib.AdapterSpec(("lm_head",), spec.shape[1:], spec.axes[1:], False, spec.in_ndim)
    with pytest.raises(Exception, match="outside the decoder layers"):
        lora_lib.layer_transform({}, [outside], LORA, config.num_layers)
