"""Decode layout: a scanned (layer-stacked) model re-laid out as a list of layers for sampling.

Under `lax.scan` each step slices layer i's weights out of the stacked [L, ...] arrays; on CPU XLA
materialises those slices, so a decode step reads every weight twice and writes it once. Decoding
is bandwidth-bound, so the sampler keeps its own unrolled copy (same values, per-layer arrays)
and re-lays out every state handed to `set_state` with one jitted gather.
"""

from __future__ import annotations

import jax
from flax import nnx
from jax.sharding import Mesh

from w4s_jax.models.decoder import abstract_model
from w4s_jax.parallel.sharding import state_shardings


def unrolled_layout(graphdef: nnx.GraphDef, state: nnx.State, mesh: Mesh):
    """(graphdef, abstract state, shardings, convert) for the unrolled twin of a scanned Decoder.

    `convert(stacked_state) -> unrolled_state` is jitted with the target shardings; a model that is
    not scanned is returned as is (convert = identity placement).
    """
    config = nnx.merge(graphdef, state).config
    if not config.scan_layers:
        shardings = state_shardings(state, mesh)
        return graphdef, state, shardings, lambda s: jax.device_put(s, shardings)
    unrolled_graphdef, unrolled_abstract = abstract_model(config.replace(scan_layers=False))
    shardings = state_shardings(unrolled_abstract, mesh)

    def convert(stacked: nnx.State) -> nnx.State:
        source = dict(nnx.to_flat_state(stacked))
        pairs = []
        for path, variable in nnx.to_flat_state(unrolled_abstract):
            if path[0] == "layers":
                value = source[("layers", *path[2:])].get_value()[path[1]]
            else:
                value = source[path].get_value()
            pairs.append((path, variable.replace(value)))
        return nnx.from_flat_state(pairs)

    jitted = jax.jit(convert, out_shardings=shardings)
    return unrolled_graphdef, unrolled_abstract, shardings, jitted
