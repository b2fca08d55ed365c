"""`w4s-jax train`: RLAO (reward-weighted regression) of the meta-agent on trajectory files.

`--config=configs/train.py:HARDWARE[,SIZE]` applies a hardware preset (configlib.HARDWARE_PRESETS),
e.g. `configs/train.py:v5p-8,7b`; the default trains SmolLM2-135M on CPU.
"""

import ml_collections

from w4s_jax import configlib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = configlib.model_section()
    config.mesh = configlib.mesh_section()
    config.train = configlib.train_section()
    config.rlao = configlib.rlao_section()
    config.optimizer = configlib.optimizer_section()
    config.lora = configlib.lora_section()
    config.checkpoint = configlib.checkpoint_section()
    config.update(configlib.output_fields("runs/train"))
    if arg:
        hardware, _, size = arg.partition(",")
        configlib.apply_hardware_preset(config, hardware, size, micro_batch_field="train.micro_batch")
    return config
