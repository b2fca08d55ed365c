"""Decoder -> Hugging Face checkpoint (config.json + model.safetensors) that transformers loads.

The safetensors file is streamed: the header is computed from the layout table first, then each
tensor is fetched from the devices, converted to the HF layout and written, one at a time, so
exporting never holds a second copy of the model on the host.
"""

from __future__ import annotations

import json
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder
from w4s_jax.models.hf_layout import TensorRule, hf_shape, layer_rules, model_rules

_SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def _our_tensors(model: Decoder, config: ModelConfig) -> list[tuple[TensorRule, int | None, jax.Array, int | None]]:
    """(rule, layer, parameter, index into its stacked layer axis or None) per HF tensor, in file order."""
    flat = {path: var.get_value() for path, var in nnx.to_flat_state(nnx.state(model))}
    entries: list[tuple[TensorRule, int | None, jax.Array, int | None]] = [
        (rule, None, flat[rule.ours], None) for rule in model_rules(config)
    ]
    for layer in range(config.num_layers):
        for rule in layer_rules(config):
            if config.scan_layers:
                entries.append((rule, layer, flat[("layers", *rule.ours)], layer))
            else:
                entries.append((rule, layer, flat[("layers", layer, *rule.ours)], None))
    return entries


def export_hf(model: Decoder, config: ModelConfig, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes config.json and model.safetensors (parameter dtype) to `out_dir`; returns it."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype_name = str(jnp.dtype(config.param_dtype))
    if dtype_name not in _SAFETENSORS_DTYPES:
        raise ValueError(f"export_hf: param_dtype {dtype_name} has no safetensors dtype; use one of {sorted(_SAFETENSORS_DTYPES)}")
    dtype = jnp.dtype(dtype_name)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    entries = _our_tensors(model, config)
    for rule, layer, value, index in entries:
        shape = hf_shape(rule, tuple(value.shape[1:] if index is not None else value.shape), config)
        size = int(np.prod(shape)) * dtype.itemsize
        header[rule.hf_name(layer)] = {
            "dtype": _SAFETENSORS_DTYPES[dtype_name],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(out_dir / "model.safetensors", "wb") as file:
        file.write(struct.pack("<Q", len(header_bytes)))
        file.write(header_bytes)
        for rule, _, value, index in entries:
            host = np.asarray(jax.device_get(value if index is None else value[index])).astype(dtype)
            file.write(np.ascontiguousarray(rule.to_hf(host, config)).tobytes())
    (out_dir / "config.json").write_text(json.dumps(config.to_hf_config(), indent=2) + "\n", encoding="utf-8")
    return out_dir
