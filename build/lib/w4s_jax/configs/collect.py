"""`w4s-jax collect`: RLAO trajectories over several tasks x seeds with the current meta-agent."""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.w4s_run_config("runs/collect")
    config.w4s.tasks = "gsm8k,math,drop"
    config.w4s.seeds = "0,1"
    config.w4s.test_eval = False  # collection feeds training; test scores belong to the final evaluation
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 2048
    return config
