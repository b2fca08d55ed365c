"""The jitted RLAO train step: a pure function over pytrees with explicit shardings and donation.

The state is a `TrainState` pytree of arrays (the model's nnx graphdef is static and merged inside
the step). The batch is [micro_batches, rows, seq_len]; micro-batch gradients are summed in a
`lax.scan` and the loss is divided once by the global example count, so accumulation gives the big
batch's update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import abstract_model
from w4s_jax.parallel.sharding import logical_to_spec, state_shardings
from w4s_jax.rlao import lora as lora_lib
from w4s_jax.rlao.loss import loss_sums, num_examples, token_nll
from w4s_jax.rlao.optimizer import learning_rate_schedule, make_optimizer
from w4s_jax.rlao.pipeline import BATCH_KEYS, batch_sharding
from w4s_jax.rlao.settings import OptimizerConfig, StepConfig

METRIC_NAMES = (
    "loss", "nll", "mean_weight", "examples", "target_tokens", "tokens", "grad_norm", "learning_rate",
)  # fmt: skip


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """What one optimizer step reads and replaces (donated), and what a checkpoint holds."""

    step: jax.Array  # int32 []: optimizer steps taken so far; the learning-rate schedule's clock
    params: dict  # trainable parameters (pure dict): the whole model, or only the LoRA adapters
    opt_state: optax.OptState  # the optimizer's state (clipping, AdamW moments), laid out like params


class TrainProgram:
    """Everything static about training one model on one mesh: shapes, shardings, the jitted step."""

    def __init__(self, model_config: ModelConfig, mesh: Mesh, optimizer: OptimizerConfig, step: StepConfig):
        self.model_config, self.mesh, self.step_config = model_config, mesh, step
        self.graphdef, abstract_state = abstract_model(model_config)
        self.model_shardings = nnx.to_pure_dict(state_shardings(abstract_state, mesh))
        self.abstract_model_params = nnx.to_pure_dict(abstract_state)
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.lora_specs = lora_lib.adapter_specs(abstract_state, step.lora) if step.lora else []
        if step.lora:
            axes = lora_lib.adapter_logical_axes(self.lora_specs)
            self.abstract_trainable = jax.eval_shape(
                lambda: lora_lib.init_adapters(self.lora_specs, step.lora, jax.random.key(0))
            )
            self.trainable_shardings = jax.tree.map(
                lambda x, a: NamedSharding(mesh, logical_to_spec(a, x.shape, mesh)),
                self.abstract_trainable,
                axes,
                is_leaf=lambda x: isinstance(x, tuple),
            )
            self.frozen_shardings = self.model_shardings
        else:
            self.abstract_trainable = self.abstract_model_params
            self.trainable_shardings = self.model_shardings
            self.frozen_shardings = {}
        self.schedule = learning_rate_schedule(optimizer)
        self.optimizer = make_optimizer(optimizer)
        abstract_opt = jax.eval_shape(self.optimizer.init, self.abstract_trainable)
        opt_shardings = optax.tree_map_params(
            self.optimizer,
            lambda _, sharding: sharding,
            abstract_opt,
            self.trainable_shardings,
            transform_non_params=lambda _: self.replicated,
        )
        self.state_shardings = TrainState(step=self.replicated, params=self.trainable_shardings, opt_state=opt_shardings)
        self.batch_shardings = {key: batch_sharding(mesh) for key in BATCH_KEYS}
        self.step = jax.jit(
            self._train_step,
            in_shardings=(self.state_shardings, self.frozen_shardings, self.batch_shardings),
            out_shardings=(self.state_shardings, self.replicated),
            donate_argnums=(0,),
        )
        self._init = jax.jit(self._init_state, in_shardings=(self.trainable_shardings,), out_shardings=self.state_shardings)

    # ---- pure functions -------------------------------------------------------------------------

    def model_params(self, trainable: dict, frozen: dict) -> dict:
        """The full model parameters (LoRA merged whole): what the sampler and export use."""
        if self.step_config.lora:
            return lora_lib.merge(frozen, trainable, self.lora_specs, self.step_config.lora)
        return trainable

    def _token_nll(self, trainable: dict, frozen: dict, batch: dict) -> jax.Array:
        """Token NLL [B, T]; with LoRA the adapters merge one layer at a time inside the layer loop."""
        lora = self.step_config.lora
        model = nnx.merge(self.graphdef, frozen if lora else trainable)
        transform = lora_lib.layer_transform(trainable, self.lora_specs, lora, self.model_config.num_layers) if lora else None
        h, _ = model.hidden_states(
            batch["inputs"], batch["positions"], batch["segment_ids"], branch_ids=batch["branch_ids"],
            layer_transform=transform,
        )  # fmt: skip
        return token_nll(h, batch["targets"], model.logits, self.step_config.logits_chunk)

    def _micro_loss(self, trainable: dict, frozen: dict, micro: dict, examples: jax.Array):
        nll = self._token_nll(trainable, frozen, micro)
        sums = loss_sums(nll, micro["target_scale"], micro["example_weight"])
        sums["tokens"] = jnp.sum((micro["segment_ids"] > 0).astype(jnp.float32))
        return sums["weighted_nll"] / examples, sums

    def _train_step(self, state: TrainState, frozen: dict, batch: dict) -> tuple[TrainState, dict]:
        examples = num_examples(batch["target_scale"])
        grad_fn = jax.grad(self._micro_loss, has_aux=True)

        def accumulate(carry, micro):
            grads, sums = grad_fn(state.params, frozen, micro, examples)
            grads = jax.lax.with_sharding_constraint(grads, self.trainable_shardings)
            return jax.tree.map(jnp.add, carry, (grads, sums)), None

        zero_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
        zero_grads = jax.lax.with_sharding_constraint(zero_grads, self.trainable_shardings)
        zero_sums = {k: jnp.zeros((), jnp.float32) for k in ("weighted_nll", "plain_nll", "weight", "target_tokens", "tokens")}
        (grads, sums), _ = jax.lax.scan(accumulate, (zero_grads, zero_sums), batch)
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": sums["weighted_nll"] / examples,
            "nll": sums["plain_nll"] / examples,
            "mean_weight": sums["weight"] / examples,
            "examples": examples,
            "target_tokens": sums["target_tokens"],
            "tokens": sums["tokens"],
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": jnp.asarray(self.schedule(state.step), jnp.float32),
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def _init_state(self, trainable: dict) -> TrainState:
        return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, opt_state=self.optimizer.init(trainable))

    # ---- host-side helpers ----------------------------------------------------------------------

    def init_state(self, model_params: dict, seed: int) -> tuple[TrainState, dict]:
        """(train state, frozen params) from the model's parameters (pure dict, already sharded);
        `seed` draws the LoRA adapters' initial values."""
        if self.step_config.lora:
            adapters = jax.jit(
                lambda: lora_lib.init_adapters(self.lora_specs, self.step_config.lora, jax.random.key(seed + 1)),
                out_shardings=self.trainable_shardings,
            )()
            return self._init(adapters), model_params
        return self._init(model_params), {}

    def abstract_inputs(self, micro_batches: int, rows: int, seq_len: int) -> tuple[TrainState, dict, dict]:
        """ShapeDtypeStructs (with shardings) of the step's arguments: for AOT compilation."""
        def with_sharding(tree, shardings):
            return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)

        state = jax.eval_shape(self._init_state, self.abstract_trainable)
        frozen = self.abstract_model_params if self.step_config.lora else {}
        batch = {
            key: jax.ShapeDtypeStruct(
                (micro_batches, rows, seq_len),
                jnp.float32 if key in ("target_scale", "example_weight") else jnp.int32,
            )
            for key in BATCH_KEYS
        }
        return (
            with_sharding(state, self.state_shardings),
            with_sharding(frozen, self.frozen_shardings),
            with_sharding(batch, self.batch_shardings),
        )

    def merged_params(self, state: TrainState, frozen: dict) -> dict:
        """Full model parameters after training (LoRA merged): what export and the sampler use."""
        if not self.step_config.lora:
            return state.params
        return jax.jit(self.model_params, out_shardings=self.model_shardings)(state.params, frozen)

    def example_nll_fn(self) -> Callable[[dict, dict, dict], jax.Array]:
        """jit fn(trainable, frozen, batch [rows, T]) -> per-row sum(target_scale * nll): with one
        example per row, the mean target-token NLL of each example."""

        def per_row(trainable, frozen, batch):
            nll = self._token_nll(trainable, frozen, batch)
            return jnp.sum(batch["target_scale"] * nll, axis=-1)

        return jax.jit(per_row)


def to_numpy_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}
