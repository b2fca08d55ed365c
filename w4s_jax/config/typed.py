"""A checked ConfigDict becomes typed settings here, once, at a command's entry; below the CLI code
reads the settings, never the ConfigDict."""

from __future__ import annotations

import ml_collections

from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.learning.settings import ExperimentSettings, LearningSettings
from w4s_jax.models.settings import ModelSettings
from w4s_jax.parallel.settings import MeshSettings
from w4s_jax.rlao.settings import (
    CheckpointSettings,
    LoraSettings,
    OptimizerSettings,
    RlaoSettings,
    RoundsSettings,
    TrainingSettings,
    TrainSettings,
)
from w4s_jax.sampling.settings import SamplingSettings
from w4s_jax.sandbox.settings import SandboxSettings
from w4s_jax.settings_fields import from_section
from w4s_jax.tasks.settings import TaskSettings
from w4s_jax.w4s.settings import MetaAgentSettings, RunSettings, W4SSettings

SECTION_CLASSES: dict[str, type] = {
    "model": ModelSettings,
    "mesh": MeshSettings,
    "sampling": SamplingSettings,
    "executor": ExecutorSettings,
    "sandbox": SandboxSettings,
    "task": TaskSettings,
    "meta_agent": MetaAgentSettings,
    "w4s": W4SSettings,
    "train": TrainSettings,
    "rlao": RlaoSettings,
    "optimizer": OptimizerSettings,
    "lora": LoraSettings,
    "checkpoint": CheckpointSettings,
    "rounds": RoundsSettings,
    "learning": LearningSettings,
}


def section_settings(config: ml_collections.ConfigDict, name: str) -> object:
    """The typed settings of one section of `config` (raises ConfigError naming a bad field)."""
    return from_section(SECTION_CLASSES[name], config[name])


def run_settings(config: ml_collections.ConfigDict) -> RunSettings:
    return RunSettings(**{name: section_settings(config, name) for name in
                          ("model", "mesh", "sampling", "executor", "sandbox", "task", "meta_agent", "w4s")},
                       output_dir=str(config.output_dir))


def training_settings(config: ml_collections.ConfigDict) -> TrainingSettings:
    return TrainingSettings(**{name: section_settings(config, name) for name in
                               ("model", "train", "rlao", "optimizer", "lora", "checkpoint")})


def experiment_settings(config: ml_collections.ConfigDict) -> ExperimentSettings:
    return ExperimentSettings(run_settings(config), training_settings(config), section_settings(config, "learning"))
