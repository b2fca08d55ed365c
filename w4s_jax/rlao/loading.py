"""The meta-agent a training run starts from: model parameters on the mesh and its chat tokenizer."""

from __future__ import annotations

import pathlib

from flax import nnx
from jax.sharding import Mesh

from w4s_jax.config_errors import ConfigError
from w4s_jax.models import model_from_settings
from w4s_jax.models.config import ModelConfig
from w4s_jax.models.settings import ModelSettings
from w4s_jax.rlao.examples import TrainingTokenizer
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer


def load_tokenizer(choice: str, model: ModelSettings) -> TrainingTokenizer:
    """`choice` (train.tokenizer): 'bytes', a path, or '' for the tokenizer beside model.path."""
    if choice == "bytes":
        if model.preset != "tiny" and not model.path:
            raise ConfigError("train.tokenizer: 'bytes' has 256 ids and fits only the tiny preset")
        return ByteChatTokenizer()
    path = choice or model.path
    if not path:
        raise ConfigError(
            "train.tokenizer: model.path is '' (random init), so there is no tokenizer beside the weights; "
            "pass --config.train.tokenizer=<HF dir or .gguf> or 'bytes' with the tiny preset"
        )
    from w4s_jax.sampling.chat import ChatTokenizer

    if not pathlib.Path(path).exists():
        raise ConfigError(f"train.tokenizer: {path} does not exist")
    return ChatTokenizer.from_path(path)


def load_meta_agent(model: ModelSettings, mesh: Mesh, seed: int = 0) -> tuple[ModelConfig, dict]:
    """(model config, parameters as a pure dict placed on `mesh`) for model.preset / model.path;
    `seed` initialises a random model (model.path '')."""
    model_config, decoder = model_from_settings(model, mesh, seed=seed)
    return model_config, nnx.to_pure_dict(nnx.state(decoder))


def export_meta_agent(model_config: ModelConfig, params: dict, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Hugging Face safetensors of full parameters (LoRA already merged) via the model package."""
    from w4s_jax.models import abstract_model, export_hf

    graphdef, _ = abstract_model(model_config)
    return export_hf(nnx.merge(graphdef, params), model_config, out_dir)
