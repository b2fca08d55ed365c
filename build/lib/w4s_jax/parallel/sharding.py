"""Logical-axis rules: parameter and activation dimension names -> mesh axes.

Parameters carry their logical axis names as `logical_axes` metadata (see models/decoder.py);
the rules below turn them into PartitionSpecs for a given mesh. A mesh axis that does not divide
a dimension (e.g. 2 KV heads over tensor=4) is dropped for that array, so every preset shards on
every mesh without padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# logical name -> mesh axes (a tuple shards one dimension over several mesh axes).
LOGICAL_AXIS_RULES: dict[str, tuple[str, ...]] = {
    # parameters
    "vocab": ("tensor",),
    "embed": ("fsdp",),
    "heads": ("tensor",),
    "kv_heads": ("tensor",),
    "head_dim": (),
    "mlp": ("tensor",),
    "norm": (),
    "layers": (),
    # activations
    "act_batch": ("data", "fsdp"),
    "act_length": (),
    "act_embed": (),
    "act_heads": ("tensor",),
    "act_kv_heads": ("tensor",),
    "act_mlp": ("tensor",),
    "act_vocab": ("tensor",),
    "cache_length": (),
}


def logical_to_spec(
    logical_axes: Sequence[str | None], shape: Sequence[int] | None = None, mesh: Mesh | None = None
) -> PartitionSpec:
    """PartitionSpec for named dims; with shape and mesh, drops mesh axes that do not divide a dim."""
    used: set[str] = set()
    spec = []
    for i, name in enumerate(logical_axes):
        if name is None:
            spec.append(None)
            continue
        if name not in LOGICAL_AXIS_RULES:
            raise KeyError(f"no sharding rule for logical axis {name!r}; known: {sorted(LOGICAL_AXIS_RULES)}")
        axes = []
        size = 1
        for axis in LOGICAL_AXIS_RULES[name]:
            if axis in used:
                continue
            if mesh is not None:
                if axis not in mesh.shape:
                    continue
                axis_size = mesh.shape[axis]
                if shape is not None and shape[i] % (size * axis_size):
                    continue
                size *= axis_size
            axes.append(axis)
        used.update(axes)
        spec.append(tuple(axes) if len(axes) > 1 else (axes[0] if axes else None))
    return PartitionSpec(*spec)


def variable_logical_axes(variable: nnx.Variable) -> tuple[str | None, ...]:
    """The `logical_axes` metadata of a parameter (all-None when it has none)."""
    axes = variable.get_metadata().get("logical_axes")
    if axes is None:
        return (None,) * np.ndim(variable.get_value())
    return tuple(axes)


def state_shardings(state: nnx.State, mesh: Mesh) -> nnx.State:
    """A NamedSharding for every leaf of a model state (abstract or concrete)."""

    def one(variable: nnx.Variable):
        shape = np.shape(variable.get_value())
        spec = logical_to_spec(variable_logical_axes(variable), shape, mesh)
        return variable.replace(NamedSharding(mesh, spec))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """Sharding constraint by logical names under the current mesh; a no-op without one."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(logical_axes, x.shape, mesh))
