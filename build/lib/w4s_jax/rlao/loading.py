"""The meta-agent a training run starts from: model parameters on the mesh and its chat tokenizer."""

from __future__ import annotations

import pathlib

import ml_collections
from flax import nnx
from jax.sharding import Mesh

from w4s_jax.config_errors import ConfigError
from w4s_jax.models import model_from_config
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.examples import TrainingTokenizer
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer


def load_tokenizer(config: ml_collections.ConfigDict) -> TrainingTokenizer:
    """train.tokenizer: 'bytes', a path, or '' for the tokenizer beside model.path."""
    choice = config.train.tokenizer
    if choice == "bytes":
        if config.model.preset != "tiny" and not config.model.path:
            raise ConfigError("train.tokenizer: 'bytes' has 256 ids and fits only the tiny preset")
        return ByteChatTokenizer()
    path = choice or config.model.path
    if not path:
        raise ConfigError(
            "train.tokenizer: model.path is '' (random init), so there is no tokenizer beside the weights; "
            "pass --config.train.tokenizer=<HF dir or .gguf> or 'bytes' with the tiny preset"
        )
    from w4s_jax.sampling.chat import ChatTokenizer

    if not pathlib.Path(path).exists():
        raise ConfigError(f"train.tokenizer: {path} does not exist")
    return ChatTokenizer.from_path(path)


def load_meta_agent(config: ml_collections.ConfigDict, mesh: Mesh) -> tuple[ModelConfig, dict]:
    """(model config, parameters as a pure dict placed on `mesh`) for model.preset / model.path."""
    model_config, model = model_from_config(config.model, mesh, seed=config.train.seed)
    return model_config, nnx.to_pure_dict(nnx.state(model))


def export_meta_agent(model_config: ModelConfig, params: dict, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Hugging Face safetensors of full parameters (LoRA already merged) via the model package."""
    from w4s_jax.models import abstract_model, export_hf

    graphdef, _ = abstract_model(model_config)
    return export_hf(nnx.merge(graphdef, params), model_config, out_dir)
