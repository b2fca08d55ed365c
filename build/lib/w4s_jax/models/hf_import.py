"""Hugging Face safetensors directory -> Decoder, one tensor at a time, placed in its sharding.

Each tensor is read through its own short-lived `safe_open` (memory-mapped), so pages of the
checkpoint do not accumulate in the process while the model loads: host memory stays near the
largest tensor, whatever the checkpoint size.
"""

from __future__ import annotations

import pathlib

import numpy as np
from jax.sharding import Mesh
from safetensors import SafetensorError, safe_open

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder
from w4s_jax.models.errors import WeightFormatError
from w4s_jax.models.placement import materialize


def load_hf_config(directory: str | pathlib.Path) -> ModelConfig:
    """The ModelConfig of the config.json in a Hugging Face checkpoint directory."""
    return ModelConfig.from_hf_config(pathlib.Path(directory) / "config.json")


def tensor_index(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """Tensor name -> the .safetensors file holding it (reads headers only)."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise WeightFormatError(f"{directory}: no *.safetensors files in the checkpoint directory")
    index: dict[str, pathlib.Path] = {}
    for file in files:
        try:
            with safe_open(file, framework="np") as handle:
                names = list(handle.keys())
        except (SafetensorError, OSError) as exc:
            raise WeightFormatError(f"{file}: corrupt or truncated safetensors file ({exc})") from exc
        for name in names:
            index[name] = file
    return index


def read_safetensor(file: pathlib.Path, name: str, expected_shape: tuple[int, ...]) -> np.ndarray:
    """One tensor from one file, shape-checked; errors name the file and the tensor."""
    try:
        with safe_open(file, framework="np") as handle:
            shape = tuple(handle.get_slice(name).get_shape())
            if shape != tuple(expected_shape):
                raise WeightFormatError(f"{file}: tensor {name!r} has shape {shape}, expected {tuple(expected_shape)}")
            return handle.get_tensor(name)
    except SafetensorError as exc:
        raise WeightFormatError(f"{file}: cannot read tensor {name!r} ({exc})") from exc


def load_hf_model(directory: str | pathlib.Path, config: ModelConfig, mesh: Mesh) -> Decoder:
    """A Decoder with the checkpoint's parameters, each placed with its NamedSharding on `mesh`."""
    directory = pathlib.Path(directory)
    index = tensor_index(directory)

    def read(name: str, expected_shape: tuple[int, ...]) -> np.ndarray:
        if name not in index:
            raise WeightFormatError(f"{directory}: missing tensor {name!r} (expected shape {tuple(expected_shape)})")
        return read_safetensor(index[name], name, expected_shape)

    return materialize(config, mesh, read)
