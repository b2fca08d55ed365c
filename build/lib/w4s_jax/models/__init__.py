"""Flax NNX decoder (Llama / Qwen2 families), presets, and weight import/export."""

from w4s_jax.models.config import ModelConfig, RopeScaling
from w4s_jax.models.decoder import Decoder, KVCache, abstract_model
from w4s_jax.models.hf_export import export_hf
from w4s_jax.models.presets import get_preset
from w4s_jax.models.weights import load_model, model_from_config, smollm2_gguf_path

__all__ = [
    "Decoder",
    "KVCache",
    "ModelConfig",
    "RopeScaling",
    "abstract_model",
    "export_hf",
    "get_preset",
    "load_model",
    "model_from_config",
    "smollm2_gguf_path",
]
