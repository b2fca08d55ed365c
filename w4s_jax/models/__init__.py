"""Flax NNX decoder (Llama / Qwen2 families), presets, and weight import/export.

The names below load on first use (PEP 562): `models.settings` and `models.presets` are read when a
config file loads, which must not import JAX.
"""

from w4s_jax.lazy_exports import lazy_exports

_HOMES = {
    "ModelConfig": "w4s_jax.models.config",
    "RopeScaling": "w4s_jax.models.config",
    "Decoder": "w4s_jax.models.decoder",
    "KVCache": "w4s_jax.models.decoder",
    "abstract_model": "w4s_jax.models.decoder",
    "export_hf": "w4s_jax.models.hf_export",
    "get_preset": "w4s_jax.models.presets",
    "load_model": "w4s_jax.models.weights",
    "model_from_settings": "w4s_jax.models.weights",
    "smollm2_gguf_path": "w4s_jax.models.weights",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
