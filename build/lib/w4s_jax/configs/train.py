"""`w4s-jax train`: RLAO (reward-weighted regression) of the meta-agent on trajectory files.

`--config=configs/train.py:HARDWARE[,SIZE]` applies a hardware preset (config.presets), e.g.
`train.py:v5p-8,7b`; the default trains SmolLM2-135M on CPU.
"""

import ml_collections

from w4s_jax.config import sections
from w4s_jax.config.loading import config_arg
from w4s_jax.config.presets import apply_hardware_preset


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = sections.model_section()
    config.mesh = sections.mesh_section()
    config.train = sections.train_section()
    config.rlao = sections.rlao_section()
    config.optimizer = sections.optimizer_section()
    config.lora = sections.lora_section()
    config.checkpoint = sections.checkpoint_section()
    config.update(sections.output_fields("runs/train"))
    return apply_hardware_preset(config, *config_arg(arg, "hardware", "size"))
