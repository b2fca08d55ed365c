"""The one table between our parameters and Hugging Face tensor names and layouts.

Import (safetensors and GGUF) and export both read this table, so a layout fix lands in one
place. HF linear weights are [out, in]; ours are einsum kernels with named dims
(q: [embed, heads, head_dim], o: [heads, head_dim, embed], mlp: [embed, mlp] / [mlp, embed]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import abstract_model

Transform = Callable[[np.ndarray, ModelConfig], np.ndarray]


@dataclasses.dataclass(frozen=True)
class TensorRule:
    """One parameter: our path (inside a layer for layer rules), HF name, and layout transforms."""

    ours: tuple[str, ...]
    hf: str  # "{i}" stands for the layer index in layer rules
    to_ours: Transform
    to_hf: Transform

    def hf_name(self, layer: int | None = None) -> str:
        return self.hf.format(i=layer)


def _identity(x, c):
    return x


def _transpose(x, c):
    return x.T


def _heads_in(heads_of: Callable[[ModelConfig], int]) -> tuple[Transform, Transform]:
    """[H*Dh, D] (HF q/k/v) <-> [D, H, Dh] (ours)."""
    return (
        lambda x, c: x.T.reshape(c.hidden_size, heads_of(c), c.head_dim),
        lambda x, c: x.reshape(c.hidden_size, heads_of(c) * c.head_dim).T,
    )


def _heads_bias(heads_of: Callable[[ModelConfig], int]) -> tuple[Transform, Transform]:
    """[H*Dh] (HF q/k/v bias) <-> [H, Dh] (ours)."""
    return (lambda x, c: x.reshape(heads_of(c), c.head_dim), lambda x, c: x.reshape(-1))


def _heads_out() -> tuple[Transform, Transform]:
    """[D, H*Dh] (HF o_proj) <-> [H, Dh, D] (ours)."""
    return (
        lambda x, c: x.T.reshape(c.num_heads, c.head_dim, c.hidden_size),
        lambda x, c: x.reshape(c.num_heads * c.head_dim, c.hidden_size).T,
    )


def _q_heads(c):
    return c.num_heads


def _kv_heads(c):
    return c.num_kv_heads


def model_rules(config: ModelConfig) -> list[TensorRule]:
    """Rules for the parameters outside the layers."""
    rules = [
        TensorRule(("embedding",), "model.embed_tokens.weight", _identity, _identity),
        TensorRule(("final_norm", "scale"), "model.norm.weight", _identity, _identity),
    ]
    if not config.tie_embeddings:
        rules.append(TensorRule(("lm_head",), "lm_head.weight", _transpose, _transpose))
    return rules


def layer_rules(config: ModelConfig) -> list[TensorRule]:
    """Rules for one decoder layer's parameters (HF names carry the layer index as {i})."""
    prefix = "model.layers.{i}."
    rules = [
        TensorRule(("input_norm", "scale"), prefix + "input_layernorm.weight", _identity, _identity),
        TensorRule(("post_attn_norm", "scale"), prefix + "post_attention_layernorm.weight", _identity, _identity),
        TensorRule(("attn", "q_proj"), prefix + "self_attn.q_proj.weight", *_heads_in(_q_heads)),
        TensorRule(("attn", "k_proj"), prefix + "self_attn.k_proj.weight", *_heads_in(_kv_heads)),
        TensorRule(("attn", "v_proj"), prefix + "self_attn.v_proj.weight", *_heads_in(_kv_heads)),
        TensorRule(("attn", "o_proj"), prefix + "self_attn.o_proj.weight", *_heads_out()),
        TensorRule(("mlp", "gate_proj"), prefix + "mlp.gate_proj.weight", _transpose, _transpose),
        TensorRule(("mlp", "up_proj"), prefix + "mlp.up_proj.weight", _transpose, _transpose),
        TensorRule(("mlp", "down_proj"), prefix + "mlp.down_proj.weight", _transpose, _transpose),
    ]
    if config.qkv_bias:
        rules += [
            TensorRule(("attn", "q_bias"), prefix + "self_attn.q_proj.bias", *_heads_bias(_q_heads)),
            TensorRule(("attn", "k_bias"), prefix + "self_attn.k_proj.bias", *_heads_bias(_kv_heads)),
            TensorRule(("attn", "v_bias"), prefix + "self_attn.v_proj.bias", *_heads_bias(_kv_heads)),
        ]
    return rules


def hf_shape(rule: TensorRule, our_shape: tuple[int, ...], config: ModelConfig) -> tuple[int, ...]:
    """The HF tensor shape that maps onto a parameter of `our_shape` (per layer for layer rules)."""
    return tuple(jax.eval_shape(lambda x: rule.to_hf(x, config), jax.ShapeDtypeStruct(our_shape, np.float32)).shape)


def hf_tensor_shapes(config: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, HF shape) of every tensor of a checkpoint with this config, in file order."""
    _, abstract_state = abstract_model(config.replace(scan_layers=True))
    shapes = {path: var.get_value().shape for path, var in nnx.to_flat_state(abstract_state)}
    tensors = [(rule.hf_name(), hf_shape(rule, shapes[rule.ours], config)) for rule in model_rules(config)]
    for layer in range(config.num_layers):
        for rule in layer_rules(config):
            tensors.append((rule.hf_name(layer), hf_shape(rule, shapes[("layers", *rule.ours)][1:], config)))
    return tensors
