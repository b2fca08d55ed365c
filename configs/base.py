"""Every common section with its defaults; `--config=configs/base.py:HARDWARE[,SIZE]` applies a preset.

Works with every W4S/RLAO subcommand (optimize, collect, train, rlao). HARDWARE is a
`configlib.HARDWARE_PRESETS` name (cpu, gpu-1, v5p-8, v5e-16, v5p-64, h100-2x8) and SIZE a
`configlib.MODEL_SIZES` name (135m, 0.5b, 1.5b, 7b, 14b, 32b), e.g. `configs/base.py:v5p-8,7b`.
"""

import ml_collections

from w4s_jax import configlib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = configlib.full_run_config("runs/base")
    if arg:
        hardware, _, size = arg.partition(",")
        configlib.apply_hardware_preset(config, hardware, size, micro_batch_field="train.micro_batch")
    return config
