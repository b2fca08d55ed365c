"""The typed training settings that the config sections take their defaults from.

Standard library only: loading a config file reads these defaults, and must not import JAX, optax or
orbax to do so. The modules that act on a setting (optimizer, lora, train_step, checkpointing)
import it from here.
"""

from __future__ import annotations

import dataclasses

from w4s_jax.config_errors import ConfigError

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 1e-5
    warmup_steps: int = 10
    total_steps: int = 100
    end_lr_ratio: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ConfigError(f"optimizer.learning_rate: must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.total_steps < 1:
            raise ConfigError(
                f"optimizer.warmup_steps/total_steps: need warmup >= 0 and total >= 1, got "
                f"{self.warmup_steps}/{self.total_steps}"
            )


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora.rank: must be >= 1, got {self.rank}")
        unknown = set(self.targets) - set(DEFAULT_TARGETS)
        if unknown or not self.targets:
            raise ConfigError(f"lora.targets: {sorted(unknown) or 'empty'}; choose from {DEFAULT_TARGETS}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclasses.dataclass(frozen=True)
class StepConfig:
    logits_chunk: int = 512
    lora: LoraConfig | None = None


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    directory: str
    every_steps: int = 50
    keep: int = 3
    async_save: bool = True

    def __post_init__(self) -> None:
        if self.every_steps < 1 or self.keep < 1:
            raise ConfigError(
                f"checkpoint.every_steps/keep: both must be >= 1, got {self.every_steps}/{self.keep}"
            )
