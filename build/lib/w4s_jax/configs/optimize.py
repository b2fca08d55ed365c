"""`w4s-jax optimize`: one task, one meta-agent, one executor (W4S at inference time).

Defaults: the meta-agent behind an OpenAI-compatible endpoint (e.g. `w4s-jax serve`) on loopback,
GPT-4o-mini as executor, m = 5 candidates per turn at temperature 0.5, episodes of 3 turns.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.w4s_run_config("runs/optimize")
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 2048
    return config
