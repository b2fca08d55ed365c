"""Per-layer parity with transformers' PyTorch modules: RMSNorm, attention and the decoder layer.

Two random Hugging Face decoder layers (Llama with llama3 RoPE scaling, Qwen2 with q/k/v bias) are
loaded into ours through the import table (`hf_layout`), either as two layers or as one module with
parameters stacked on a layers axis run under `lax.scan`, and both sides run the same inputs: a
left-padded row and a row with two packed segments (a 4D mask for transformers, segment ids for us).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import DecoderLayer, Rope, attention_mask
from w4s_jax.models.hf_layout import layer_rules

LAYERS, BATCH, LENGTH = 2, 2, 7
SEGMENTS = np.array([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 2, 2, 2, 2]])
POSITIONS = np.array([[0, 0, 0, 1, 2, 3, 4], [0, 1, 2, 0, 1, 2, 3]])
REAL = SEGMENTS != 0
ARCHITECTURES = {
    "llama": (transformers.LlamaConfig, transformers.models.llama.modeling_llama, "Llama",
              {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 4}}),
    "qwen2": (transformers.Qwen2Config, transformers.models.qwen2.modeling_qwen2, "Qwen2", {}),
}  # fmt: skip


def hf_layers(architecture: str, kv_heads: int):
    """(HF config, two randomly initialised HF decoder layers with random norm scales and biases)."""
    config_cls, modeling, prefix, extra = ARCHITECTURES[architecture]
    config = config_cls(
        vocab_size=32, hidden_size=64, intermediate_size=96, num_hidden_layers=LAYERS, num_attention_heads=4,
        num_key_value_heads=kv_heads, head_dim=16, rms_norm_eps=1e-5, rope_theta=10_000.0, **extra,
    )  # fmt: skip
    config._attn_implementation = "eager"
    torch.manual_seed(kv_heads)
    layers = [getattr(modeling, f"{prefix}DecoderLayer")(config, layer_idx=i).eval() for i in range(LAYERS)]
    with torch.no_grad():
        for layer in layers:
            for name, param in layer.named_parameters():
                param.normal_(1.0 if "norm" in name else 0.0, 0.5 if ("norm" in name or "bias" in name) else 0.15)
    rotary = getattr(modeling, f"{prefix}RotaryEmbedding")(config)
    return config, layers, rotary


def our_config(hf_config, architecture: str) -> ModelConfig:
    raw = hf_config.to_dict() | {"architectures": [f"{ARCHITECTURES[architecture][2]}ForCausalLM"]}
    return ModelConfig.from_hf_config(raw, attention_chunk=3)  # blocks of 3 queries: 3 + 3 + 1


def our_layers(config: ModelConfig, hf: list, scan: bool) -> list[DecoderLayer] | DecoderLayer:
    """Our layer(s) holding the HF layers' weights: one stacked module (scan) or one per layer."""
    def weights(rule, index):
        tensor = hf[index].state_dict()[rule.hf_name(index).split(f"layers.{index}.", 1)[1]].numpy()
        return jnp.asarray(rule.to_ours(tensor, config))

    def fill(module, pick):
        for rule in layer_rules(config):
            target = module
            for part in rule.ours[:-1]:
                target = getattr(target, part)
            getattr(target, rule.ours[-1]).set_value(pick(rule))
        return module

    if scan:
        stacked = DecoderLayer(config, nnx.Rngs(0), num_stacked=LAYERS)
        return fill(stacked, lambda rule: jnp.stack([weights(rule, i) for i in range(LAYERS)]))
    return [fill(DecoderLayer(config, nnx.Rngs(0)), lambda rule, i=i: weights(rule, i)) for i in range(LAYERS)]


def run_ours(layers, scan: bool, apply, x):
    """Applies `apply(layer, x)` layer after layer: a `lax.scan` over the stacked module, or a loop."""
    if not scan:
        for layer in layers:
            x = apply(layer, x)
        return x
    graphdef, state = nnx.split(layers)
    return jax.lax.scan(lambda x, s: (apply(nnx.merge(graphdef, s), x), None), x, state)[0]


def hf_mask() -> torch.Tensor:
    """The attention rule written out for transformers: an additive [B, 1, T, T] mask."""
    slots = np.arange(LENGTH)
    allowed = (slots[None, None, :] <= slots[None, :, None]) & (SEGMENTS[:, None, :] == SEGMENTS[:, :, None])
    allowed &= REAL[:, :, None]
    return torch.tensor(np.where(allowed, 0.0, torch.finfo(torch.float32).min)[:, None], dtype=torch.float32)


@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_layers_match_transformers(architecture, kv_heads, scan):
    hf_config, hf, rotary = hf_layers(architecture, kv_heads)
    config = our_config(hf_config, architecture)
    ours = our_layers(config, hf, scan)
    x = np.random.default_rng(kv_heads).normal(size=(BATCH, LENGTH, 64)).astype(np.float32)
    positions = jnp.asarray(POSITIONS)
    segments = jnp.asarray(SEGMENTS, jnp.int32)
    slots = jnp.broadcast_to(jnp.arange(LENGTH), (BATCH, LENGTH))
    rope, mask = Rope.at(positions, config, jnp.float32), attention_mask(slots, segments, segments)
    cos_sin = rotary(torch.tensor(x), torch.tensor(POSITIONS))
    torch_mask = hf_mask()

    def reference(step) -> np.ndarray:
        out = torch.tensor(x)
        with torch.no_grad():
            for layer in hf:
                out = step(layer, out)
        return out.numpy()

    cases = {
        "rms_norm": (lambda layer, h: layer.input_norm(h), lambda layer, h: layer.input_layernorm(h)),
        "attention": (lambda layer, h: layer.attn(h, rope, mask)[0],
                      lambda layer, h: layer.self_attn(h, position_embeddings=cos_sin, attention_mask=torch_mask)[0]),
        "decoder_layer": (lambda layer, h: layer(h, rope, mask)[0],
                          lambda layer, h: layer(h, attention_mask=torch_mask, position_embeddings=cos_sin)),
    }  # fmt: skip
    for name, (mine, theirs) in cases.items():
        got = np.asarray(run_ours(ours, scan, mine, jnp.asarray(x)))
        expected = reference(theirs)
        scale = np.abs(expected[REAL]).max()
        np.testing.assert_allclose(got[REAL] / scale, expected[REAL] / scale, atol=2e-6, rtol=0, err_msg=name)
