"""The RLAO training loop: trajectories -> examples -> steps, with checkpoints, metrics and resume.

`run_training` is what `w4s-jax train` and each round of `w4s-jax rlao` call: it takes an already
loaded model (parameters as a pure dict, placed on `mesh`) and returns the trained parameters, so
rounds can hand them to the sampler in process. Preemption (SIGTERM) saves a checkpoint between two
steps and returns with `preempted=True`; the next run resumes from it. A `PhaseClock` times the train
steps and the checkpoint saves apart; each run appends them to `phase_times.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from w4s_jax import crash_points, phase_clock
from w4s_jax.config_errors import ConfigError
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.checkpointing import PreemptionFlag, RunCheckpoints
from w4s_jax.rlao.examples import DataReport, Example, TrainingTokenizer, build_examples
from w4s_jax.rlao.flops import peak_flops_per_second, train_flops
from w4s_jax.rlao.metrics import MetricsLogger
from w4s_jax.rlao.pipeline import GlobalBatches, PipelineConfig, attention_pairs, build_dataset
from w4s_jax.rlao.settings import StepConfig, TrainingSettings, TrainSettings
from w4s_jax.rlao.shared_prefix import build_units
from w4s_jax.rlao.train_step import TrainProgram, TrainState, to_numpy_metrics
from w4s_jax.trajectory import read_trajectories


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    frozen: dict
    program: TrainProgram
    steps_done: int
    total_steps: int
    preempted: bool
    last_metrics: dict[str, float]
    data_report: DataReport
    metrics_path: pathlib.Path

    def model_params(self) -> dict:
        """Full model parameters after training (LoRA merged), placed like the model's."""
        return self.program.merged_params(self.state, self.frozen)


def pipeline_config(train: TrainSettings) -> PipelineConfig:
    return PipelineConfig(
        seq_len=train.seq_len,
        global_batch=train.micro_batch * train.grad_accum_steps,
        micro_batches=train.grad_accum_steps,
        seed=train.seed,
        packing_bins=train.packing_bins,
        shared_prefix=train.shared_prefix,
    )


def derive_steps(train: TrainSettings, epoch_tokens: int) -> int:
    """train.steps, or enough steps for `epochs` passes over `epoch_tokens` (what the packing units hold)."""
    if train.steps > 0:
        return train.steps
    per_step = train.seq_len * train.micro_batch * train.grad_accum_steps
    return max(1, math.ceil(train.epochs * epoch_tokens / per_step))


def data_fingerprint(examples: list[Example]) -> str:
    """Identifies the training data, so a checkpoint is never resumed on other data."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.ids.tobytes())
        digest.update(example.loss_mask.tobytes())
        digest.update(np.float64(example.weight).tobytes())
    return digest.hexdigest()[:16]


def _check_resume(meta: dict, expected: dict, directory: str) -> None:
    wrong = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if wrong:
        details = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in wrong.items())
        raise ConfigError(
            f"checkpoint.dir: {directory} holds a run with other settings ({details}); "
            "use a new output_dir or set checkpoint.resume=False"
        )


def _preemption_requested(flag: PreemptionFlag) -> bool:
    """True on every host as soon as one host got SIGTERM (hosts must stop at the same step)."""
    requested = flag.requested
    if jax.process_count() > 1:
        requested = bool(np.any(multihost_utils.process_allgather(np.asarray(requested))))
    return requested


@dataclasses.dataclass(frozen=True)
class TrainingData:
    examples: list[Example]
    report: DataReport


def load_training_data(settings: TrainingSettings, tokenizer: TrainingTokenizer, data: str | list[str]) -> TrainingData:
    """The weighted examples of the trajectories in `data`. Raises `NothingToTrain` here, before a
    caller hands its parameters over to `run_training`."""
    train = settings.train
    examples, report = build_examples(
        read_trajectories(data), tokenizer, train.seq_len, settings.rlao.weights(), settings.rlao.keep_invalid
    )
    return TrainingData(examples, report)


def run_training(
    settings: TrainingSettings,
    *,
    model_config: ModelConfig,
    mesh: jax.sharding.Mesh,
    model_params: dict,
    data: TrainingData,
    output_dir: str | pathlib.Path,
) -> TrainResult:
    """Trains on `data`; resumes from `output_dir`'s checkpoints when present. `model_params` is
    taken over: full fine-tuning donates them to the train state, so pass the only reference."""
    clock = phase_clock.PhaseClock()
    output_dir = pathlib.Path(output_dir)
    train = settings.train
    examples, data_report = data.examples, data.report
    _, packing = build_units(examples, train.seq_len, train.shared_prefix)
    total_steps = derive_steps(train, packing.unit_tokens)
    lora = settings.lora.adapters()
    program = TrainProgram(
        model_config, mesh, settings.optimizer.schedule(total_steps), StepConfig(train.logits_chunk, lora)
    )
    pipeline = pipeline_config(train)
    batches = GlobalBatches(build_dataset(examples, pipeline), pipeline, mesh)
    checkpoint = settings.checkpoint.config(str(output_dir))
    checkpoint_dir = checkpoint.directory
    checkpoints = RunCheckpoints(checkpoint)
    meta = {
        "examples": len(examples), "data": data_fingerprint(examples), "total_steps": total_steps,
        "seq_len": pipeline.seq_len, "global_batch": pipeline.global_batch, "lora": lora is not None,
        "shared_prefix": pipeline.shared_prefix,
        "model": model_config.name,
    }  # fmt: skip
    latest = checkpoints.latest_step() if settings.checkpoint.resume else None
    if latest is not None:
        abstract_state, _, _ = program.abstract_inputs(pipeline.micro_batches, 1, pipeline.seq_len)
        state, saved_meta = checkpoints.restore(latest, abstract_state, batches.iterator)
        _check_resume(saved_meta, meta, checkpoint_dir)
        frozen = model_params if lora else {}
        start = latest
    else:
        state, frozen = program.init_state(model_params, train.seed)
        start = 0
    del model_params  # full fine-tuning: the state owns (and donates) the parameters from here on

    logger = MetricsLogger(output_dir, total_steps, start, progress=train.progress and start < total_steps)
    if jax.process_index() == 0:
        report = data_report.to_dict() | {"packing": dataclasses.asdict(packing)}
        (output_dir / "data_report.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.note(f"rlao: {data_report.summary()}; {total_steps} steps" + (f", resumed at step {start}" if start else ""))
    logger.note(f"rlao: {packing.summary()}")
    peak, peak_source = peak_flops_per_second(list(mesh.devices.flat))
    last_metrics: dict[str, float] = {}
    preempted = False
    step = saved = start

    def emit(step_done: int, device_metrics: dict, pairs: int, started: float) -> None:
        nonlocal last_metrics
        metrics = to_numpy_metrics(jax.device_get(device_metrics))
        elapsed = time.perf_counter() - started
        flops = train_flops(model_config, metrics["tokens"], pairs * jax.process_count(), lora is not None)
        metrics |= {
            "step_time_s": elapsed,
            "tokens_per_s": metrics["tokens"] / elapsed,
            "mfu": flops / elapsed / peak,
        }
        last_metrics = metrics
        logger.log(step_done, metrics)

    try:
        with PreemptionFlag() as flag, jax.set_mesh(mesh):
            pending = None
            step_started = time.perf_counter()
            while step < total_steps:
                if _preemption_requested(flag):
                    preempted = True
                    break
                with clock.measure(phase_clock.TRAINING):
                    local = batches.next_local()
                    pairs = attention_pairs(local["segment_ids"], local["branch_ids"])
                    state, device_metrics = program.step(state, frozen, batches.to_global(local))
                    step += 1
                    crash_points.reached("train-step")  # a step done, its checkpoint not yet saved
                    if pending is not None:
                        emit(*pending, step_started)
                        step_started = time.perf_counter()
                    pending = (step, device_metrics, pairs)
                    if checkpoints.due(step):
                        # The save waits for this step's arrays anyway: wait here, so the step's own
                        # time counts as training and only the save's as checkpointing.
                        jax.block_until_ready(state)
                with clock.measure(phase_clock.CHECKPOINT):
                    if checkpoints.save(step, state, batches.iterator, meta | {"step": step}):
                        saved = step
            if pending is not None:
                with clock.measure(phase_clock.TRAINING):
                    emit(*pending, step_started)
            if step != saved:
                with clock.measure(phase_clock.CHECKPOINT):
                    checkpoints.save(step, state, batches.iterator, meta | {"step": step}, force=True)
    finally:
        with clock.measure(phase_clock.CHECKPOINT):
            checkpoints.close()  # waits for the async saves still writing
        logger.close()
        if jax.process_index() == 0:
            clock.save(output_dir, phase_clock.TRAINING_PHASES)
    if preempted:
        logger.note(f"rlao: SIGTERM received; checkpoint saved at step {step}, exiting")
    logger.note(f"rlao: MFU against {peak_source}")
    return TrainResult(state, frozen, program, step, total_steps, preempted, last_metrics, data_report, logger.path)
