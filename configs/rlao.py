"""`w4s-jax rlao`: rounds of W4S collection with the in-process JAX meta-agent and RLAO training.

Needs model.path (HF safetensors directory or .gguf) for the meta-agent and its tokenizer, and an
executor; every field of collect (configs/collect.py) and train (configs/train.py) applies.
"""

import ml_collections

from w4s_jax import configlib


def get_config() -> ml_collections.ConfigDict:
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
    config.update(configlib.output_fields("runs/rlao"))
    config.meta_agent.kind = "jax"
    config.w4s.test_eval = False
    config.sampling.temperature = 0.5
    return config
