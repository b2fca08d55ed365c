"""GGUF (llama.cpp) file -> ModelConfig and Decoder, dequantised with the `gguf` package.

llama.cpp stores Llama q/k projections with their rows permuted for its interleaved RoPE; we
undo that permutation (as transformers' GGUF loader does) so the weights match the half-split
RoPE of the Hugging Face layout, then reuse the safetensors placement path.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from jax.sharding import Mesh

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder
from w4s_jax.models.errors import WeightFormatError
from w4s_jax.models.placement import materialize

_ARCHITECTURES = ("llama", "qwen2")
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_LAYER_PATTERN = re.compile(r"model\.layers\.(\d+)\.(.+)")


def open_gguf(path: str | pathlib.Path) -> GGUFReader:
    try:
        return GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError/IndexError/struct errors on bad bytes
        raise WeightFormatError(f"{path}: corrupt or truncated GGUF file ({type(exc).__name__}: {exc})") from exc


def _field(reader: GGUFReader, path: pathlib.Path, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise WeightFormatError(f"{path}: missing GGUF metadata field {key!r}")
        return default
    return field.contents()


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a Hugging Face tensor name."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _LAYER_PATTERN.fullmatch(hf_name)
    if not match or match.group(2) not in _LAYER_NAMES:
        raise KeyError(f"no GGUF name for tensor {hf_name!r}")
    return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"


def config_from_reader(reader: GGUFReader, path: pathlib.Path) -> ModelConfig:
    arch = _field(reader, path, "general.architecture")
    if arch not in _ARCHITECTURES:
        raise WeightFormatError(
            f"{path}: field 'general.architecture' = {arch!r}; unknown architecture, expected one of {_ARCHITECTURES}"
        )
    tensor_names = {t.name for t in reader.tensors}
    if "rope_freqs.weight" in tensor_names:
        raise WeightFormatError(f"{path}: tensor 'rope_freqs.weight' (GGUF RoPE scaling) is not supported")
    heads = int(_field(reader, path, f"{arch}.attention.head_count"))
    hidden = int(_field(reader, path, f"{arch}.embedding_length"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab_default = len(tokens.data) if tokens is not None else None
    return ModelConfig(
        name=str(_field(reader, path, "general.name", path.stem)),
        architecture=arch,
        vocab_size=int(_field(reader, path, f"{arch}.vocab_size", vocab_default)),
        hidden_size=hidden,
        intermediate_size=int(_field(reader, path, f"{arch}.feed_forward_length")),
        num_layers=int(_field(reader, path, f"{arch}.block_count")),
        num_heads=heads,
        num_kv_heads=int(_field(reader, path, f"{arch}.attention.head_count_kv", heads)),
        head_dim=int(_field(reader, path, f"{arch}.attention.key_length", hidden // heads)),
        rope_theta=float(_field(reader, path, f"{arch}.rope.freq_base", 10_000.0)),
        rms_eps=float(_field(reader, path, f"{arch}.attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in tensor_names,
        qkv_bias=arch == "qwen2",
        max_positions=int(_field(reader, path, f"{arch}.context_length", 32_768)),
    )


def load_gguf_config(path: str | pathlib.Path) -> ModelConfig:
    """The ModelConfig described by a GGUF file's metadata."""
    return config_from_reader(open_gguf(path), pathlib.Path(path))


def _unpermute_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head row interleave of q/k (rows [H, 2, Dh/2] -> [H, Dh/2, 2] order)."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def load_gguf_model(path: str | pathlib.Path, config: ModelConfig, mesh: Mesh) -> Decoder:
    """A Decoder with the GGUF file's dequantised parameters, each placed in its sharding."""
    path = pathlib.Path(path)
    reader = open_gguf(path)
    tensors = {t.name: t for t in reader.tensors}

    def read(hf_name: str, expected_shape: tuple[int, ...]) -> np.ndarray:
        name = gguf_name(hf_name)
        if name not in tensors:
            raise WeightFormatError(f"{path}: missing tensor {name!r} (for {hf_name}, expected shape {expected_shape})")
        tensor = tensors[name]
        try:
            weight = dequantize(tensor.data, tensor.tensor_type)
        except Exception as exc:
            raise WeightFormatError(f"{path}: cannot dequantise tensor {name!r} ({exc})") from exc
        weight = np.asarray(weight, dtype=np.float32).reshape(tuple(reversed([int(d) for d in tensor.shape])))
        if weight.shape != tuple(expected_shape):
            raise WeightFormatError(f"{path}: tensor {name!r} has shape {weight.shape}, expected {tuple(expected_shape)}")
        if config.architecture == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.num_heads if name.endswith("attn_q.weight") else config.num_kv_heads
            weight = _unpermute_rows(weight, heads)
        return weight

    return materialize(config, mesh, read)
