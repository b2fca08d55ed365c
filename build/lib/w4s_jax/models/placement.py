"""Materialise a Decoder from a tensor source, one tensor at a time, directly in its sharding.

The importers (safetensors, GGUF) only know how to read one Hugging Face tensor by name; this
module walks the layout table, converts each tensor to our layout and dtype on the host, and
places it with its NamedSharding. Scanned layers are written into the stacked [L, ...] array one
layer at a time (donated in-place update), so the host never holds more than one layer's tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder, abstract_model
from w4s_jax.models.hf_layout import TensorRule, hf_shape, layer_rules, model_rules
from w4s_jax.parallel.sharding import state_shardings

# read(hf_name, expected_hf_shape) -> host array in HF layout; raises naming file and tensor.
TensorReader = Callable[[str, tuple[int, ...]], np.ndarray]


def _put(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Each device receives only its own slice of the host array."""
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


@functools.cache
def _stacked_writers(shape: tuple[int, ...], dtype: jnp.dtype, sharding: NamedSharding):
    """(zeros(), write(stacked, layer, index)) jitted for one stacked leaf; write donates `stacked`."""
    zeros = jax.jit(lambda: jnp.zeros(shape, dtype), out_shardings=sharding)
    write = jax.jit(
        lambda stacked, layer, index: jax.lax.dynamic_update_index_in_dim(stacked, layer, index, 0),
        out_shardings=sharding,
        donate_argnums=0,
    )
    return zeros, write


def _layer_sharding(stacked: NamedSharding) -> NamedSharding:
    """The sharding of one layer's slice of a stacked [L, ...] parameter."""
    return NamedSharding(stacked.mesh, PartitionSpec(*tuple(stacked.spec)[1:]))


def materialize(config: ModelConfig, mesh: Mesh, read: TensorReader) -> Decoder:
    """A Decoder whose every parameter comes from `read`, placed with its target sharding."""
    graphdef, abstract_state = abstract_model(config)
    shardings = state_shardings(abstract_state, mesh)
    abstract = dict(nnx.to_flat_state(abstract_state))
    target = {path: var.get_value() for path, var in nnx.to_flat_state(shardings)}
    dtype = jnp.dtype(config.param_dtype)

    def host(rule: TensorRule, layer: int | None, our_shape: tuple[int, ...]) -> np.ndarray:
        tensor = read(rule.hf_name(layer), hf_shape(rule, our_shape, config))
        return np.ascontiguousarray(rule.to_ours(tensor, config).astype(dtype))

    values: dict[tuple, jax.Array] = {}
    for rule in model_rules(config):
        values[rule.ours] = _put(host(rule, None, abstract[rule.ours].get_value().shape), target[rule.ours])
    for rule in layer_rules(config):
        if config.scan_layers:
            path = ("layers", *rule.ours)
            shape = abstract[path].get_value().shape
            zeros, write = _stacked_writers(shape, dtype, target[path])
            stacked = zeros()
            layer_sharding = _layer_sharding(target[path])
            for layer in range(config.num_layers):
                stacked = write(stacked, _put(host(rule, layer, shape[1:]), layer_sharding), np.int32(layer))
            values[path] = stacked
        else:
            for layer in range(config.num_layers):
                path = ("layers", layer, *rule.ours)
                values[path] = _put(host(rule, layer, abstract[path].get_value().shape), target[path])
    unmapped = sorted(set(abstract) - set(values))
    if unmapped:
        raise RuntimeError(f"parameters with no import rule in hf_layout: {unmapped}")
    state = nnx.from_flat_state([(path, abstract[path].replace(values[path])) for path in abstract])
    return nnx.merge(graphdef, state)
