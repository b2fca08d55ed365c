"""Every common section with its defaults; `--config=configs/base.py:HARDWARE[,SIZE]` applies a preset.

Works with every W4S/RLAO subcommand (optimize, collect, train, rlao). HARDWARE is a
`config.presets.HARDWARE_PRESETS` name (cpu, gpu-1, v5p-8, v5e-16, v5p-64, h100-2x8) and SIZE a
`config.presets.MODEL_SIZES` name (135m, 0.5b, 1.5b, 7b, 14b, 32b), e.g. `base.py:v5p-8,7b`.
"""

import ml_collections

from w4s_jax.config import sections
from w4s_jax.config.loading import config_arg
from w4s_jax.config.presets import apply_hardware_preset


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = sections.full_run_config("runs/base")
    return apply_hardware_preset(config, *config_arg(arg, "hardware", "size"))
