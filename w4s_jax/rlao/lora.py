"""LoRA adapters over the decoder's projection kernels, merged functionally inside the step.

Each targeted kernel W [(layers,) *in_dims, *out_dims] gets A [(layers,) *in_dims, r] and
B [(layers,) r, *out_dims]; the step uses W + (alpha / r) * A @ B, so the base stays frozen (it is
never differentiated and has no optimizer state) and the model code needs no LoRA layer. The train
step merges one layer at a time inside the decoder's layer loop (`layer_transform`): merging the
whole model first would hold a second copy of it and, in the backward pass, a gradient as large as
the model. `merge` (whole model) is for the sampler and export. Adapters
keep the logical axes of the dims they share with W, so they shard like it. A starts random and
B at zero: the merged model equals the base before the first update.
"""

from __future__ import annotations

import dataclasses
import string

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from w4s_jax.config_errors import ConfigError
from w4s_jax.models.decoder import LayerTransform
from w4s_jax.rlao.settings import LoraConfig

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    """Where one adapter pair goes and how its dims split into input and output."""

    path: Path
    shape: tuple[int, ...]
    axes: tuple[str | None, ...]
    stacked: bool  # leading "layers" axis
    in_ndim: int

    def a_shape(self, rank: int) -> tuple[int, ...]:
        lead = self.shape[:1] if self.stacked else ()
        return (*lead, *self.shape[len(lead) : len(lead) + self.in_ndim], rank)

    def b_shape(self, rank: int) -> tuple[int, ...]:
        lead = self.shape[:1] if self.stacked else ()
        return (*lead, rank, *self.shape[len(lead) + self.in_ndim :])

    def a_axes(self) -> tuple[str | None, ...]:
        lead = self.axes[:1] if self.stacked else ()
        return (*lead, *self.axes[len(lead) : len(lead) + self.in_ndim], None)

    def b_axes(self) -> tuple[str | None, ...]:
        lead = self.axes[:1] if self.stacked else ()
        return (*lead, None, *self.axes[len(lead) + self.in_ndim :])


def adapter_specs(abstract_state: nnx.State, config: LoraConfig) -> list[AdapterSpec]:
    """One spec per targeted kernel of the model state (paths such as layers/attn/q_proj)."""
    specs = []
    for path, variable in nnx.to_flat_state(abstract_state):
        path = tuple(str(p) for p in path)
        if path[-1] not in config.targets:
            continue
        axes = tuple(variable.get_metadata().get("logical_axes") or (None,) * len(variable.get_value().shape))
        stacked = axes[:1] == ("layers",)
        own = axes[1:] if stacked else axes
        # Kernels that read the residual stream start with "embed" (q/k/v/gate/up: one input dim);
        # the others write it and end with "embed" (o: heads x head_dim in, down: mlp in).
        in_ndim = 1 if own[0] == "embed" else len(own) - 1
        specs.append(AdapterSpec(path, tuple(variable.get_value().shape), axes, stacked, in_ndim))
    if not specs:
        raise ConfigError(f"train.lora.targets: none of {config.targets} found among the model's parameters")
    return specs


def _key(tree: dict, name: str):
    """The key of `tree` spelled `name` (a model state keys unscanned layers by int; paths are str)."""
    return next((key for key in tree if str(key) == name), name)


def _set(tree: dict, path: Path, value) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(_key(tree, name), {})
    tree[_key(tree, path[-1])] = value


def _get(tree: dict, path: Path):
    for name in path:
        tree = tree[_key(tree, name)]
    return tree


def init_adapters(specs: list[AdapterSpec], config: LoraConfig, key: jax.Array) -> dict:
    """{path...: {"a": A, "b": B}} in float32: A ~ N(0, 1/fan_in), B = 0."""
    adapters: dict = {}
    for i, spec in enumerate(specs):
        a_shape = spec.a_shape(config.rank)
        fan_in = int(np.prod(a_shape[1 if spec.stacked else 0 : -1]))
        a = jax.random.normal(jax.random.fold_in(key, i), a_shape, jnp.float32) / np.sqrt(fan_in)
        _set(adapters, spec.path, {"a": a, "b": jnp.zeros(spec.b_shape(config.rank), jnp.float32)})
    return adapters


def adapter_logical_axes(specs: list[AdapterSpec]) -> dict:
    """The same tree as the adapters, holding each array's logical axes (for shardings)."""
    axes: dict = {}
    for spec in specs:
        _set(axes, spec.path, {"a": spec.a_axes(), "b": spec.b_axes()})
    return axes


def _delta(spec: AdapterSpec, a: jax.Array, b: jax.Array) -> jax.Array:
    """A @ B over the rank axis, batched over the stacked layers axis."""
    letters = [c for c in string.ascii_lowercase if c not in "lr"]
    lead = "l" if spec.stacked else ""
    out_ndim = len(spec.shape) - len(lead) - spec.in_ndim
    in_dims = "".join(letters[: spec.in_ndim])
    out_dims = "".join(letters[spec.in_ndim : spec.in_ndim + out_ndim])
    return jnp.einsum(f"{lead}{in_dims}r,{lead}r{out_dims}->{lead}{in_dims}{out_dims}", a, b)


def merge(base: dict, adapters: dict, specs: list[AdapterSpec], config: LoraConfig) -> dict:
    """Base parameters with W + scale * A @ B on every targeted kernel (a new tree; base untouched)."""
    merged = jax.tree.map(lambda x: x, base)
    for spec in specs:
        pair = _get(adapters, spec.path)
        kernel = _get(base, spec.path)
        delta = config.scale * _delta(spec, pair["a"], pair["b"])
        _set(merged, spec.path, (kernel.astype(jnp.float32) + delta).astype(kernel.dtype))
    return merged


def _layer_relative(spec: AdapterSpec) -> AdapterSpec:
    """The spec of one layer's kernel: path below the layer, no stacked axis."""
    depth = 1 if spec.stacked else 2  # ("layers", ...) when scanned, ("layers", "<index>", ...) when not
    own = slice(1, None) if spec.stacked else slice(None)
    return AdapterSpec(spec.path[depth:], spec.shape[own], spec.axes[own], False, spec.in_ndim)


def layer_transform(adapters: dict, specs: list[AdapterSpec], config: LoraConfig, num_layers: int) -> LayerTransform:
    """The decoder's per-layer rewrite W -> W + scale * A @ B for adapters on its layers' kernels."""
    if any(spec.path[0] != "layers" for spec in specs):
        raise ConfigError(f"train.lora.targets: adapters outside the decoder layers: {[s.path for s in specs]}")
    layer_specs = list({relative.path: relative for relative in map(_layer_relative, specs)}.values())
    if all(spec.stacked for spec in specs):
        per_layer = adapters["layers"]
    else:
        per_layer = jax.tree.map(lambda *a: jnp.stack(a), *(adapters["layers"][str(i)] for i in range(num_layers)))
    return LayerTransform(lambda params, layer_adapters: merge(params, layer_adapters, layer_specs, config), per_layer)
