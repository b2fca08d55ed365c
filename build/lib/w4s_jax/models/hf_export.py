"""Decoder -> Hugging Face checkpoint (config.json + model.safetensors) that transformers loads.

The safetensors file is streamed: the header is computed from the layout table first, then each
tensor is fetched from the devices, converted to the HF layout and written, one at a time, so
exporting never holds a second copy of the model on the host.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import struct
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

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


@dataclasses.dataclass(frozen=True)
class PendingTensor:
    """A tensor to stream into a safetensors file: its header entry and how to produce its data."""

    name: str
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]  # called once, when the tensor is written


def write_safetensors(path: str | pathlib.Path, tensors: list[PendingTensor], dtype: str) -> None:
    """Streams tensors into one safetensors file, producing each only when it is written."""
    dtype_name = str(jnp.dtype(dtype))
    if dtype_name not in _SAFETENSORS_DTYPES:
        raise ValueError(f"{path}: dtype {dtype_name} has no safetensors dtype; use one of {sorted(_SAFETENSORS_DTYPES)}")
    np_dtype = jnp.dtype(dtype_name)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        size = int(np.prod(tensor.shape)) * np_dtype.itemsize
        header[tensor.name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype_name],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(header_bytes)))
        file.write(header_bytes)
        for tensor in tensors:
            data = np.ascontiguousarray(tensor.produce(), dtype=np_dtype)
            if data.shape != tensor.shape:
                raise ValueError(f"{path}: tensor {tensor.name!r} produced shape {data.shape}, expected {tensor.shape}")
            file.write(data.tobytes())


def export_hf(model: Decoder, config: ModelConfig, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes config.json and model.safetensors (parameter dtype) to `out_dir`; returns it.
    On several hosts every process must call it (parameters are gathered); process 0 writes."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pending = []
    for rule, layer, value, index in _our_tensors(model, config):
        shape = hf_shape(rule, tuple(value.shape[1:] if index is not None else value.shape), config)

        def produce(rule=rule, value=value, index=index) -> np.ndarray:
            array = value if index is None else value[index]
            if not array.is_fully_addressable:  # multi-host: every process joins the gather
                array = multihost_utils.process_allgather(array, tiled=True)
            return rule.to_hf(np.asarray(jax.device_get(array)), config)

        pending.append(PendingTensor(rule.hf_name(layer), shape, produce))
    if jax.process_index() != 0:  # only process 0 writes; the others still take part in gathers
        for tensor in pending:
            tensor.produce()
        return out_dir
    write_safetensors(out_dir / "model.safetensors", pending, config.param_dtype)
    (out_dir / "config.json").write_text(json.dumps(config.to_hf_config(), indent=2) + "\n", encoding="utf-8")
    return out_dir
