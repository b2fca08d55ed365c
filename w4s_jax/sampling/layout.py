"""Decode layout: a scanned (layer-stacked) model re-laid out as a list of layers for sampling.

Under `lax.scan` each step slices layer i's weights out of the stacked [L, ...] arrays; on CPU XLA
materialises those slices, so a decode step reads every weight twice and writes it once. Decoding
is bandwidth-bound, so the sampler keeps its own unrolled copy (same values, per-layer arrays)
and re-lays out every state handed to `set_state` with one jitted gather.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from w4s_jax.models.decoder import abstract_model
from w4s_jax.parallel.sharding import state_shardings


@dataclasses.dataclass(frozen=True)
class DecodeLayout:
    """The sampler's layout of a model and the two jitted re-layouts between it and the model's own."""

    graphdef: nnx.GraphDef  # the unrolled twin's (or the model's own when it is not scanned)
    shardings: nnx.State  # of the decode layout's parameters (no arrays: a layout keeps no copy alive)
    to_decode: Callable[[nnx.State], nnx.State]  # model layout -> decode layout (a copy when scanned)
    to_source: Callable[[nnx.State], nnx.State]  # decode layout -> model layout (placed like the model's)


def unrolled_layout(graphdef: nnx.GraphDef, state: nnx.State, mesh: Mesh) -> DecodeLayout:
    """The decode layout of a model: the unrolled twin of a scanned Decoder; a model that is not
    scanned as is (both re-layouts are identity placements)."""
    config = nnx.merge(graphdef, state).config
    source_shardings = state_shardings(state, mesh)
    if not config.scan_layers:
        place = functools.partial(jax.device_put, device=source_shardings)
        return DecodeLayout(graphdef, source_shardings, place, place)
    _, source_abstract = abstract_model(config)  # not `state`: a closure over it would keep its arrays alive
    unrolled_graphdef, unrolled_abstract = abstract_model(config.replace(scan_layers=False))
    shardings = state_shardings(unrolled_abstract, mesh)

    def to_decode(stacked: nnx.State) -> nnx.State:
        source = dict(nnx.to_flat_state(stacked))
        pairs = []
        for path, variable in nnx.to_flat_state(unrolled_abstract):
            if path[0] == "layers":
                value = source[("layers", *path[2:])].get_value()[path[1]]
            else:
                value = source[path].get_value()
            pairs.append((path, variable.replace(value)))
        return nnx.from_flat_state(pairs)

    def to_source(unrolled: nnx.State) -> nnx.State:
        layers = dict(nnx.to_flat_state(unrolled))
        pairs = []
        for path, variable in nnx.to_flat_state(source_abstract):
            if path[0] == "layers":
                per_layer = [layers[("layers", index, *path[1:])].get_value() for index in range(config.num_layers)]
                value = jnp.stack(per_layer)
            else:
                value = layers[path].get_value()
            pairs.append((path, variable.replace(value)))
        return nnx.from_flat_state(pairs)

    return DecodeLayout(
        unrolled_graphdef, shardings,
        jax.jit(to_decode, out_shardings=shardings), jax.jit(to_source, out_shardings=source_shardings),
    )  # fmt: skip
