"""`w4s-jax optimize`: one task, one meta-agent, one executor (W4S at inference time).

Defaults: the meta-agent behind an OpenAI-compatible endpoint (e.g. `w4s-jax serve`) on loopback,
GPT-4o-mini as executor, m = 5 candidates per turn at temperature 0.5, episodes of 3 turns.
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
    config.update(configlib.output_fields("runs/optimize"))
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 2048
    return config
