"""AdamW with linear warmup, cosine decay and global-norm clipping (optax)."""

from __future__ import annotations

import jax
import optax

from w4s_jax.rlao.settings import OptimizerConfig


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
