"""`w4s-jax serve`: an OpenAI-compatible server over the JAX sampler.

    w4s-jax serve --config=configs/serve.py --config.model.preset=smollm2_135m \
        --config.model.path=PATH.gguf --config.host=127.0.0.1 --config.port=8000

Request fields a client leaves out (max_tokens, temperature, top_p, seed) take the sampling
section's values; `sampling.max_prompt_len` bounds the prompt (longer ones get HTTP 400).
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.serve_section()
    config.model = sections.model_section()
    config.mesh = sections.mesh_section()
    config.sampling = sections.sampling_section()
    config.sampling.temperature = 1.0  # OpenAI's default when a request gives none
    return config
