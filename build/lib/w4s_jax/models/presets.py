"""Named model presets with the published hyper-parameters of each checkpoint's config.json.

A preset fixes the shape; `load_model` checks it against the config found beside the weights
and takes shape-neutral numerics (rms_eps, max_positions) from the file. max_positions is the
Instruct releases' 32k (Qwen2.5 reaches 128k only with YaRN, which is not implemented here).
"""

from __future__ import annotations

from w4s_jax.models.config import ModelConfig, RopeScaling

_QWEN_VOCAB_SMALL = 151_936  # Qwen2.5 0.5B / 1.5B (tied embeddings)
_QWEN_VOCAB_LARGE = 152_064  # Qwen2.5 7B and larger (untied head)


def _qwen2(name: str, **fields) -> ModelConfig:
    base = {"architecture": "qwen2", "rope_theta": 1_000_000.0, "rms_eps": 1e-6, "qkv_bias": True, "max_positions": 32_768}
    return ModelConfig(name=name, **{**base, **fields})


PRESETS: dict[str, ModelConfig] = {
    # Tests: every dim divisible by 8 (and kv_heads by 2) so all test meshes shard it evenly.
    "tiny": ModelConfig(
        name="tiny",
        architecture="qwen2",
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        rope_theta=10_000.0,
        rms_eps=1e-6,
        tie_embeddings=False,
        qkv_bias=True,
        max_positions=2048,
    ),
    # HuggingFaceTB/SmolLM2-135M(-Instruct): Llama architecture, tied embeddings.
    "smollm2_135m": ModelConfig(
        name="smollm2_135m",
        architecture="llama",
        vocab_size=49_152,
        hidden_size=576,
        intermediate_size=1536,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        head_dim=64,
        rope_theta=100_000.0,
        rms_eps=1e-5,
        tie_embeddings=True,
        qkv_bias=False,
        max_positions=8192,
    ),
    # Qwen/Qwen2.5-0.5B(-Instruct)
    "qwen2p5_0p5b": _qwen2(
        "qwen2p5_0p5b", vocab_size=_QWEN_VOCAB_SMALL, hidden_size=896, intermediate_size=4864,
        num_layers=24, num_heads=14, num_kv_heads=2, head_dim=64, tie_embeddings=True,
    ),
    # Qwen/Qwen2.5-1.5B(-Instruct)
    "qwen2p5_1p5b": _qwen2(
        "qwen2p5_1p5b", vocab_size=_QWEN_VOCAB_SMALL, hidden_size=1536, intermediate_size=8960,
        num_layers=28, num_heads=12, num_kv_heads=2, head_dim=128, tie_embeddings=True,
    ),
    # Qwen/Qwen2.5-7B-Instruct
    "qwen2p5_7b": _qwen2(
        "qwen2p5_7b", vocab_size=_QWEN_VOCAB_LARGE, hidden_size=3584, intermediate_size=18_944,
        num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128, tie_embeddings=False,
    ),
    # Qwen/Qwen2.5-Coder-7B-Instruct: the paper's meta-agent.
    "qwen2p5_coder_7b": _qwen2(
        "qwen2p5_coder_7b", vocab_size=_QWEN_VOCAB_LARGE, hidden_size=3584, intermediate_size=18_944,
        num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128, tie_embeddings=False,
    ),
    # Qwen/Qwen2.5-14B-Instruct (the base release has rms_eps 1e-5; a loaded file's value wins)
    "qwen2p5_14b": _qwen2(
        "qwen2p5_14b", vocab_size=_QWEN_VOCAB_LARGE, hidden_size=5120, intermediate_size=13_824,
        num_layers=48, num_heads=40, num_kv_heads=8, head_dim=128, tie_embeddings=False,
    ),
    # Qwen/Qwen2.5-32B-Instruct (the base release has rms_eps 1e-5; a loaded file's value wins)
    "qwen2p5_32b": _qwen2(
        "qwen2p5_32b", vocab_size=_QWEN_VOCAB_LARGE, hidden_size=5120, intermediate_size=27_648,
        num_layers=64, num_heads=40, num_kv_heads=8, head_dim=128, tie_embeddings=False,
    ),
    # meta-llama/Llama-3.1-8B(-Instruct): llama3 RoPE scaling to 128k context.
    "llama3p1_8b": ModelConfig(
        name="llama3p1_8b",
        architecture="llama",
        vocab_size=128_256,
        hidden_size=4096,
        intermediate_size=14_336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        rope_theta=500_000.0,
        rope_scaling=RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position=8192),
        rms_eps=1e-5,
        tie_embeddings=False,
        qkv_bias=False,
        max_positions=131_072,
    ),
}


def get_preset(name: str) -> ModelConfig:
    """The named preset; unknown names list the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name]
