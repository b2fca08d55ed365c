"""`w4s-jax train`: RLAO on given trajectory files; checkpoints, metrics, optional HF export."""

from __future__ import annotations

import sys

import ml_collections
from absl import logging as absl_logging

from w4s_jax.config.config_checks import validate
from w4s_jax.config.typed import section_settings, training_settings
from w4s_jax.config_errors import ConfigError

DOC = (
    "RLAO: reward-weighted regression of the meta-agent on W4S trajectory files (train.data). "
    "Each candidate's reply is a target weighted by exp(reward / tau); full fine-tuning or LoRA; "
    "checkpoints every checkpoint.every_steps steps (resumed automatically, SIGTERM saves and exits); "
    "metrics in <output_dir>/metrics.jsonl and TensorBoard; train.export_dir writes HF safetensors."
)
DEFAULT_CONFIG = "train.py"


def main(config: ml_collections.ConfigDict) -> None:
    validate(config, sections=("model", "mesh", "train", "rlao", "output_dir"))
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    if not config.train.data:
        raise ConfigError("train.data: no trajectory files given; fix: pass --config.train.data=<file.jsonl>[,...]")
    settings = training_settings(config)
    mesh_settings = section_settings(config, "mesh")
    output_dir = str(config.output_dir)
    config.lock()
    from w4s_jax.parallel.mesh import mesh_from_settings
    from w4s_jax.rlao.loading import export_meta_agent, load_meta_agent, load_tokenizer
    from w4s_jax.rlao.trainer import load_training_data, run_training
    from w4s_jax.trajectory import TrajectoryFormatError

    train = settings.train
    tokenizer = load_tokenizer(train.tokenizer, settings.model)
    try:  # bad data fails here, in seconds, before any model is loaded
        data = load_training_data(settings, tokenizer, train.data)
    except TrajectoryFormatError as error:
        print(f"w4s-jax train: bad trajectory data: {error}", file=sys.stderr)
        sys.exit(2)
    mesh = mesh_from_settings(mesh_settings)
    model_config, params = load_meta_agent(settings.model, mesh, train.seed)
    result = run_training(settings, model_config=model_config, mesh=mesh, model_params=params, data=data,
                          output_dir=output_dir)
    print(f"train: {result.steps_done}/{result.total_steps} steps; last {result.last_metrics}; metrics in {result.metrics_path}")
    if result.preempted:
        return
    if train.export_dir:
        out = export_meta_agent(model_config, result.model_params(), train.export_dir)
        print(f"train: exported Hugging Face safetensors to {out}")
