"""`w4s-jax rlao`: rounds of W4S collection with the in-process JAX meta-agent and RLAO training.

Needs model.path (HF safetensors directory or .gguf) for the meta-agent and its tokenizer, and an
executor; every field of collect (collect.py) and train (train.py) applies.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.full_run_config("runs/rlao")
    config.meta_agent.kind = "jax"
    config.w4s.test_eval = False
    config.sampling.temperature = 0.5
    return config
