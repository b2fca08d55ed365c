"""`w4s-jax serve`: load a model and its chat template, then serve OpenAI's chat API until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

import ml_collections

from w4s_jax.config import config_checks
from w4s_jax.config.typed import section_settings
from w4s_jax.config_errors import ConfigError

DOC = ("OpenAI-compatible HTTP server (/v1/models, /v1/chat/completions with n, temperature, top_p, "
       "max_tokens, stop, seed, stream, response_format json_object) over the JAX sampler; requests join the "
       "running batch between decode steps and stream tokens as they are decoded. SIGTERM finishes in-flight "
       "requests, then exits 0.")
DEFAULT_CONFIG = "serve.py"


def check_serve_fields(config: ml_collections.ConfigDict) -> None:
    if not 0 <= int(config.port) <= 65535:
        raise ConfigError(f"port: {config.port} is not a TCP port; use 0..65535 (0 = any free port)")
    if int(config.max_batch) < 1:
        raise ConfigError(f"max_batch: must be >= 1, got {config.max_batch}")
    if int(config.steps_per_call) < 1:
        raise ConfigError(f"steps_per_call: must be >= 1, got {config.steps_per_call}")
    if int(config.json_retries) < 0:
        raise ConfigError(f"json_retries: must be >= 0, got {config.json_retries}")
    if config.json_invalid not in ("error", "return"):
        raise ConfigError(f"json_invalid: must be 'error' or 'return', got {config.json_invalid!r}")
    if not config.model.path:
        raise ConfigError("model.path: serving random weights is pointless; pass --config.model.path=DIR_OR.gguf")


def main(config: ml_collections.ConfigDict) -> None:
    config_checks.validate(config, ("model", "mesh", "sampling"))
    check_serve_fields(config)
    model_settings, mesh_settings, sampling = (section_settings(config, name) for name in ("model", "mesh", "sampling"))
    config.lock()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from w4s_jax.models import model_from_settings
    from w4s_jax.models.errors import WeightFormatError
    from w4s_jax.parallel.mesh import mesh_from_settings
    from w4s_jax.sampling.chat import ChatTokenizer
    from w4s_jax.sampling.sampler import Sampler
    from w4s_jax.serving.protocol import Defaults
    from w4s_jax.serving.server import make_app, serve_until_signal

    mesh = mesh_from_settings(mesh_settings)
    try:
        _, model = model_from_settings(model_settings, mesh)
        tokenizer = ChatTokenizer.from_path(model_settings.path)
    except (WeightFormatError, FileNotFoundError, KeyError) as error:
        raise ConfigError(f"model.path: {error}") from None
    sampler = Sampler(model, tokenizer, mesh, max_prompt_len=sampling.max_prompt_len, max_batch=config.max_batch)
    defaults = Defaults(max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                        top_p=sampling.top_p, top_k=sampling.top_k, seed=sampling.seed)
    app = make_app(sampler, served_name=config.served_name or config.model.preset, defaults=defaults,
                   steps_per_call=config.steps_per_call, json_retries=config.json_retries,
                   max_body_mb=config.max_body_mb, json_invalid=config.json_invalid)

    def ready(url: str) -> None:
        print(f"w4s-jax serve: serving {config.served_name or config.model.preset!r} on {url}/v1", flush=True)

    asyncio.run(serve_until_signal(app, config.host, int(config.port), ready))
    print("w4s-jax serve: stopped", file=sys.stderr, flush=True)
