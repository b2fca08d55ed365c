"""The typed training settings: the `train`, `rlao`, `optimizer`, `lora`, `checkpoint` and `rounds`
config sections, and the configs the trainer's parts act on.

Standard library only at import: loading a config file reads these defaults, and must not import JAX,
optax or orbax to do so. The modules that act on a setting (optimizer, lora, train_step,
checkpointing) import it from here; a command builds `TrainingSettings` once at its entry.
"""

from __future__ import annotations

import dataclasses

from w4s_jax.config_errors import ConfigError
from w4s_jax.models.settings import ModelSettings
from w4s_jax.settings_fields import above, at_least, check_fields, setting

WEIGHT_MODES = ("raw", "clip", "normalize", "uniform")
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



@dataclasses.dataclass(frozen=True)
class WeightConfig:
    """w = exp(r / tau), then clipped at max_weight (mode clip) or scaled to mean 1 (mode normalize);
    mode uniform gives every example w = 1 whatever its reward: plain supervised fine-tuning on the
    same examples (the control arm of the learning experiment, and its warm start)."""

    tau: float = 0.4
    mode: str = "raw"
    max_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ConfigError(f"rlao.tau: must be > 0, got {self.tau}; the paper uses 0.4")
        if self.mode not in WEIGHT_MODES:
            raise ConfigError(f"rlao.weight_mode: {self.mode!r} is not one of {WEIGHT_MODES}")
        if self.mode == "clip" and not self.max_weight > 0:
            raise ConfigError(f"rlao.max_weight: must be > 0 with weight_mode=clip, got {self.max_weight}")


@dataclasses.dataclass(frozen=True)
class RlaoSettings:
    """The `rlao` section: which candidates become examples, and their weights w = exp(reward / tau)."""

    tau: float = setting(WeightConfig.tau, "temperature of the reward weights w = exp(r / tau)", above(0))
    weight_mode: str = setting(WeightConfig.mode, "raw, clip (at max_weight), normalize (mean weight 1 over the "
                                                  "dataset) or uniform (w = 1: plain SFT on the same examples)")
    max_weight: float = setting(WeightConfig.max_weight, "largest weight with weight_mode=clip")
    keep_invalid: bool = setting(False, "also train on invalid actions and on workflows that failed their check "
                                        "after the last repair (the paper trains on neither; both stay in the "
                                        "trajectories)")

    def __post_init__(self) -> None:
        check_fields(self, "rlao")
        self.weights()

    def weights(self) -> WeightConfig:
        return WeightConfig(tau=self.tau, mode=self.weight_mode, max_weight=self.max_weight)


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """The `optimizer` section (AdamW with warmup and cosine decay); the step count comes from `train`."""

    learning_rate: float = setting(OptimizerConfig.learning_rate, "peak learning rate (AdamW)", above(0))
    warmup_steps: int = setting(OptimizerConfig.warmup_steps, "linear warmup steps from 0 to the peak", at_least(0))
    end_lr_ratio: float = setting(OptimizerConfig.end_lr_ratio, "cosine decay ends at learning_rate x this", at_least(0))
    b1: float = setting(OptimizerConfig.b1, "AdamW beta1")
    b2: float = setting(OptimizerConfig.b2, "AdamW beta2")
    eps: float = setting(OptimizerConfig.eps, "AdamW epsilon")
    weight_decay: float = setting(OptimizerConfig.weight_decay, "decoupled weight decay on matrices", at_least(0))
    clip_norm: float = setting(OptimizerConfig.clip_norm, "global gradient-norm clipping (0 = off)", at_least(0))

    def __post_init__(self) -> None:
        check_fields(self, "optimizer")

    def schedule(self, total_steps: int) -> OptimizerConfig:
        return OptimizerConfig(total_steps=total_steps, **dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    enabled: bool = setting(False, "train LoRA adapters instead of all parameters (the base stays frozen)")
    rank: int = setting(LoraConfig.rank, "adapter rank r", at_least(1))
    alpha: float = setting(LoraConfig.alpha, "adapter scale numerator: W + (alpha / r) A @ B")
    targets: str = setting(",".join(DEFAULT_TARGETS), "comma-separated kernels that get adapters")

    def __post_init__(self) -> None:
        check_fields(self, "lora")
        self.lora_config()

    def lora_config(self) -> LoraConfig:
        targets = tuple(target.strip() for target in self.targets.split(",") if target.strip())
        return LoraConfig(rank=self.rank, alpha=self.alpha, targets=targets)

    def adapters(self) -> LoraConfig | None:
        """The adapters to train, or None for full fine-tuning."""
        return self.lora_config() if self.enabled else None


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
    dir: str = setting("", "orbax checkpoint directory; '' = <output_dir>/checkpoints")
    every_steps: int = setting(CheckpointConfig.every_steps, "save every N optimizer steps (and always at the end "
                                                            "and on SIGTERM)", at_least(1))
    keep: int = setting(CheckpointConfig.keep, "checkpoints kept", at_least(1))
    async_save: bool = setting(CheckpointConfig.async_save, "write checkpoints in the background while training "
                                                           "goes on")
    resume: bool = setting(True, "continue from the latest checkpoint in dir when there is one")

    def __post_init__(self) -> None:
        check_fields(self, "checkpoint")

    def config(self, output_dir: str) -> CheckpointConfig:
        """Where and how often a training run in `output_dir` saves."""
        return CheckpointConfig(self.dir or f"{output_dir}/checkpoints", self.every_steps, self.keep, self.async_save)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The `train` section: the RLAO trainer's data, batch shape and loop."""

    data: str = setting("", "trajectory files (schema w4s-trajectory/1), comma-separated; a directory means its "
                            "trajectories.jsonl")
    seq_len: int = setting(4096, "packed sequence length in tokens; longer conversations lose early history first",
                           above(0))
    micro_batch: int = setting(8, "packed rows per gradient micro-step over all hosts (a multiple of data x fsdp)",
                               above(0))
    grad_accum_steps: int = setting(1, "micro-steps summed per optimizer step (global batch = micro_batch x "
                                       "grad_accum_steps)", above(0))
    steps: int = setting(0, "optimizer steps; 0 = derived from `epochs` and the dataset's token count", at_least(0))
    epochs: float = setting(2.0, "passes over the examples when steps = 0", at_least(0))
    seed: int = setting(0, "seed of the data order and of LoRA initialisation")
    logits_chunk: int = setting(StepConfig.logits_chunk, "sequence positions per logits chunk in the loss (never the "
                                                         "full [B, T, V] logits)", above(0))
    packing_bins: int = setting(0, "first-fit packing bins (more = less padding); 0 = rows per host per step",
                                at_least(0))
    shared_prefix: bool = setting(True, "pack the examples of one turn as their common prompt once + one branch per "
                                        "example (exact loss, fewer tokens)")
    tokenizer: str = setting("", "chat tokenizer: '' = from model.path, 'bytes' = byte-level (the tiny preset), or a "
                                 "path")
    progress: bool = setting(True, "tqdm progress bar on the console")
    export_dir: str = setting("", "after training, write the meta-agent as Hugging Face safetensors here ('' = no "
                                  "export)")

    def __post_init__(self) -> None:
        check_fields(self, "train")
        if self.steps == 0 and not self.epochs > 0:
            raise ConfigError(f"train.epochs: must be > 0 when train.steps = 0, got {self.epochs}; fix: pass "
                              "--config.train.epochs=<a number > 0> or --config.train.steps=<N>")


@dataclasses.dataclass(frozen=True)
class RoundsSettings:
    """The `rounds` section of `w4s-jax rlao`: rounds of collect (W4S with the current meta-agent) then train."""

    count: int = setting(2, "rounds of collect + train", at_least(1))
    cumulative: bool = setting(True, "train each round on the trajectories of all rounds so far (False = this "
                                     "round's only)")
    final_collect: bool = setting(True, "after the last round, collect once more with the trained meta-agent (its "
                                        "scores)")

    def __post_init__(self) -> None:
        check_fields(self, "rounds")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Every section a training run reads (`train`, `rlao`, each round of `learn`)."""

    model: ModelSettings
    train: TrainSettings
    rlao: RlaoSettings
    optimizer: OptimizerSettings
    lora: LoraSettings
    checkpoint: CheckpointSettings
