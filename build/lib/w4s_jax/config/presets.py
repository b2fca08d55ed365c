"""Hardware presets and model sizes: `--config=base.py:HARDWARE[,SIZE]` picks one of each.

A hardware preset sets the mesh (data, fsdp, tensor; -1 = the rest) and the dtypes; a model size the
model preset and the rematerialisation that fits training, and, per machine, the global micro-batch
(packed rows of train.seq_len = 4096 tokens per gradient micro-step, a multiple of data x fsdp) that
fits memory with the size's remat policy; `w4s-jax aot` confirms the TPU rows (configs/README.md).
A size missing from a machine's `micro_batch` does not fit that machine.
"""

from __future__ import annotations

import ml_collections

from w4s_jax.config_errors import ConfigError

MODEL_SIZES: dict[str, dict[str, str]] = {
    "135m": {"preset": "smollm2_135m", "remat": "none"},
    "0.5b": {"preset": "qwen2p5_0p5b", "remat": "none"},
    "1.5b": {"preset": "qwen2p5_1p5b", "remat": "dots_with_no_batch_dims_saveable"},
    "7b": {"preset": "qwen2p5_coder_7b", "remat": "full"},
    "14b": {"preset": "qwen2p5_14b", "remat": "full"},
    "32b": {"preset": "qwen2p5_32b", "remat": "full"},
}

HARDWARE_PRESETS: dict[str, dict] = {
    "cpu": {
        "doc": "one CPU host: tests, the offline demo, debugging",
        "devices": 0, "data": -1, "fsdp": 1, "tensor": 1, "dtype": "float32", "param_dtype": "float32",
        "micro_batch": {"135m": 2, "0.5b": 1},
    },
    "gpu-1": {
        "doc": "one 80 GB GPU (H100/A100)",
        "devices": 1, "data": 1, "fsdp": 1, "tensor": 1, "dtype": "bfloat16", "param_dtype": "float32",
        "micro_batch": {"135m": 16, "0.5b": 8, "1.5b": 4},
    },
    "v5p-8": {
        "doc": "TPU v5p-8 slice: 4 chips x 95 GiB HBM, one host",
        "devices": 4, "data": 1, "fsdp": 4, "tensor": 1, "dtype": "bfloat16", "param_dtype": "float32",
        "micro_batch": {"135m": 64, "0.5b": 32, "1.5b": 16, "7b": 8, "14b": 4},
    },
    "v5e-16": {
        "doc": "TPU v5e-16 slice: 16 chips x 16 GiB HBM, 4 hosts",
        "devices": 16, "data": 1, "fsdp": 16, "tensor": 1, "dtype": "bfloat16", "param_dtype": "float32",
        "micro_batch": {"135m": 64, "0.5b": 32, "1.5b": 16, "7b": 16},
    },
    "v5p-64": {
        "doc": "TPU v5p-64 slice: 32 chips x 95 GiB HBM, 8 hosts",
        "devices": 32, "data": 2, "fsdp": 16, "tensor": 1, "dtype": "bfloat16", "param_dtype": "float32",
        "micro_batch": {"0.5b": 128, "1.5b": 64, "7b": 32, "14b": 32, "32b": 32},
    },
    "h100-2x8": {
        "doc": "2 nodes x 8 H100 80 GB (SLURM): fsdp inside a node over NVLink, data across nodes",
        "devices": 16, "data": 2, "fsdp": 8, "tensor": 1, "dtype": "bfloat16", "param_dtype": "float32",
        "micro_batch": {"0.5b": 64, "1.5b": 32, "7b": 16, "14b": 16, "32b": 16},
    },
}


def apply_hardware_preset(config: ml_collections.ConfigDict, hardware: str, size: str = "") -> ml_collections.ConfigDict:
    """Sets mesh and dtypes for `hardware` and, given a `size`, the model preset, remat and (when the
    config has a `train` section) the trainer's micro-batch `train.micro_batch`.

    Neither given (a config file called without its argument) changes nothing. Unknown names, a size
    without a machine and sizes that do not fit the machine raise `ConfigError`.
    """
    if not hardware and not size:
        return config
    if hardware not in HARDWARE_PRESETS:
        raise ConfigError(f"hardware preset {hardware!r} is unknown; fix: use one of {sorted(HARDWARE_PRESETS)}")
    machine = HARDWARE_PRESETS[hardware]
    for axis in ("data", "fsdp", "tensor"):
        config.mesh[axis] = machine[axis]
    config.model.dtype = machine["dtype"]
    config.model.param_dtype = machine["param_dtype"]
    if not size:
        return config
    if size not in MODEL_SIZES:
        raise ConfigError(f"model size {size!r} is unknown; fix: use one of {sorted(MODEL_SIZES)}")
    if size not in machine["micro_batch"]:
        raise ConfigError(f"model size {size!r} does not fit {hardware}; fix: use one of {sorted(machine['micro_batch'])}")
    config.model.preset = MODEL_SIZES[size]["preset"]
    config.model.remat = MODEL_SIZES[size]["remat"]
    if "train" in config:
        config.train.micro_batch = machine["micro_batch"][size]
    return config
