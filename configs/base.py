"""Every common section with its defaults; `--config=configs/base.py:HARDWARE[,SIZE]` applies a preset.

Works with every W4S/RLAO subcommand (optimize, collect, train, rlao). HARDWARE is a
`configlib.HARDWARE_PRESETS` name (cpu, gpu-1, v5p-8, v5e-16, v5p-64, h100-2x8) and SIZE a
`configlib.MODEL_SIZES` name (135m, 0.5b, 1.5b, 7b, 14b, 32b), e.g. `configs/base.py:v5p-8,7b`.
"""

import ml_collections

from w4s_jax import configlib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = configlib.model_section()
    config.mesh = configlib.mesh_section()
    config.sampling = configlib.sampling_section()
    config.executor = configlib.executor_section()
    config.sandbox = configlib.sandbox_section()
    config.task = configlib.task_section()
    config.meta_agent = configlib.meta_agent_section()
    config.w4s = configlib.w4s_section()
    config.train = configlib.train_section()
    config.rlao = configlib.rlao_section()
    config.optimizer = configlib.optimizer_section()
    config.lora = configlib.lora_section()
    config.checkpoint = configlib.checkpoint_section()
    config.rounds = configlib.rounds_section()
    config.update(configlib.output_fields("runs/base"))
    if arg:
        hardware, _, size = arg.partition(",")
        configlib.apply_hardware_preset(config, hardware, size, micro_batch_field="train.micro_batch")
    return config
