"""`w4s-jax collect`: RLAO trajectories over several tasks x seeds with the current meta-agent."""

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
    config.update(configlib.output_fields("runs/collect"))
    config.w4s.tasks = "gsm8k,math,drop"
    config.w4s.seeds = "0,1"
    config.w4s.test_eval = False  # collection feeds training; test scores belong to the final evaluation
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 2048
    return config
