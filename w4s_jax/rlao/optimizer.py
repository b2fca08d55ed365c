"""AdamW with linear warmup, cosine decay and global-norm clipping (optax)."""

from __future__ import annotations

import dataclasses

import jax
import optax

from w4s_jax.config.errors import ConfigError


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


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """0 -> peak over warmup, then cosine to peak * end_lr_ratio at total_steps."""
    warmup = min(config.warmup_steps, config.total_steps - 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else config.learning_rate,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(config.total_steps, warmup + 1),
        end_value=config.learning_rate * config.end_lr_ratio,
    )


def _decay_mask(params):
    """Weight decay on matrices only (not norms, biases or scalars)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    chain = []
    if config.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(config.clip_norm))
    chain.append(
        optax.adamw(
            learning_rate=learning_rate_schedule(config),
            b1=config.b1,
            b2=config.b2,
            eps=config.eps,
            weight_decay=config.weight_decay,
            mask=_decay_mask,
        )
    )
    return optax.chain(*chain)
