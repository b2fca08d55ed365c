"""`w4s-jax aot`: compile an RLAO round (train step, sampler prefill and decode) for a TPU topology on
this (CPU) host.

Example: `w4s-jax aot --config=configs/aot.py --config.model.preset=qwen2p5_coder_7b
--config.topology=v5p-8 --config.seq_len=8192 --config.output=OUT.json`. LoRA on v5e:
`--config.lora.enabled=True --config.model.param_dtype=bfloat16 --config.topology=v5e-8`. The train
step alone: `--config.generation.enabled=False`.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = sections.model_section()
    config.model.preset = "qwen2p5_coder_7b"
    config.model.dtype = "bfloat16"
    config.model.remat = "full"
    config.lora = sections.lora_section()
    config.generation = sections.aot_generation_section()
    config.update(sections.aot_fields())
    return config
