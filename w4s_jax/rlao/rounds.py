"""RLAO rounds: collect with the current meta-agent, train on what was collected, collect again.

The sampler and the trainer share one mesh and one process, and one model copy: the sampler holds
the parameters while the meta-agent generates; for training it hands them over in the trainer's
layout and keeps none (`Sampler.source_params(release=True)`), and after training it gets the
trained ones back with `Sampler.set_state` (no reload, no recompile of generation). So each phase's
peak is its own programs' (`w4s-jax aot` reports both), never the sum of a sampler copy and a train
step. Every round lives in `<output_dir>/round_<r>/{collect,train}`; a finished collection is
kept as it is, an unfinished one resumes from its journal and training from its checkpoints, so a
killed `w4s-jax rlao` rerun with the same output_dir continues where it stopped.

With `rlao.keep_invalid` False (the paper's data) a collection in which no candidate is a valid
workflow that passed its check gives nothing to train on; the parameters then stay as they are, and
so would the next collection (same seeds), so the rounds stop there and say why.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import types
from collections.abc import Callable
from typing import Any

from flax import nnx

from w4s_jax.models import abstract_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.examples import NothingToTrain, TrainingTokenizer
from w4s_jax.rlao.settings import RoundsSettings, TrainingSettings
from w4s_jax.rlao.trainer import load_training_data, run_training

# collect(settings, policy, output_dir) -> an object with `.trajectories_path` and `.stopped_reason`
# (w4s.runner.run_w4s with the command's ledger bound: one budget over all rounds). `settings` is the
# command's RunSettings, passed through untouched (rlao sits below w4s and does not read it).
Collect = Callable[[Any, Any, pathlib.Path], Any]


@dataclasses.dataclass(frozen=True)
class RoundRecord:
    round: int
    trajectories: str
    train_steps: int
    last_metrics: dict[str, float]


def finished_collection(directory: pathlib.Path) -> types.SimpleNamespace | None:
    """A collection a killed run finished (its result.json, written last, is complete and names no
    budget stop): a rerun trains on its trajectories as they are, without replaying it, so nothing
    that finished is written again. None: collect (or resume collecting from the journal)."""
    try:
        summary = json.loads((directory / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    trajectories = directory / "trajectories.jsonl"
    if not isinstance(summary, dict) or summary.get("stopped_reason") != "" or not trajectories.exists():
        return None
    return types.SimpleNamespace(trajectories_path=trajectories, stopped_reason="")


def run_rounds(
    run_settings: Any,
    training: TrainingSettings,
    rounds: RoundsSettings,
    *,
    model_config: ModelConfig,
    mesh: Any,
    tokenizer: TrainingTokenizer,
    sampler: Any,
    policy: Any,
    collect: Collect,
    output_dir: str | pathlib.Path,
    log: Callable[[str], None] = print,
) -> tuple[list[RoundRecord], dict]:
    """Runs `rounds.count` rounds from the parameters `sampler` holds; returns their records and the
    final parameters (pure dict, the trainer's layout), which the sampler then no longer holds."""
    output_dir = pathlib.Path(output_dir)
    graphdef, _ = abstract_model(model_config)
    collected: list[str] = []
    records = []
    for round_index in range(rounds.count):
        round_dir = output_dir / f"round_{round_index}"
        result = finished_collection(round_dir / "collect") or collect(run_settings, policy, round_dir / "collect")
        stopped = getattr(result, "stopped_reason", "")
        if stopped and not getattr(result, "trajectory_count", 1):
            log(f"rlao: round {round_index}: collection stopped before it collected anything ({stopped}); "
                "stopping: the budget covers no further collection")
            return records, sampler.source_params(release=True)
        collected.append(str(result.trajectories_path))
        data = collected if rounds.cumulative else collected[-1:]
        log(f"rlao: round {round_index}: training on {len(data)} trajectory file(s)")
        try:
            training_data = load_training_data(training, tokenizer, list(data))
        except NothingToTrain as nothing:
            log(f"rlao: round {round_index}: {nothing}; stopping: the parameters, and so the next collection, "
                "would not change")
            return records, sampler.source_params(release=True)
        # The sampler's copy goes to the trainer (no reference kept here): one model copy while training.
        trained = run_training(
            training, model_config=model_config, mesh=mesh, model_params=sampler.source_params(release=True),
            data=training_data, output_dir=round_dir / "train",
        )  # fmt: skip
        if trained.preempted:
            raise SystemExit(f"rlao: preempted in round {round_index}; rerun with the same output_dir to resume")
        records.append(RoundRecord(round_index, collected[-1], trained.steps_done, trained.last_metrics))
        # The trained parameters go back to the sampler; the train state (optimizer moments, a LoRA
        # run's base) is freed with `trained` before the next collection.
        sampler.set_state(nnx.merge(graphdef, trained.model_params()))
        del trained
        if stopped:
            # The command's budget is spent: later collections would be refused at their first call.
            log(f"rlao: round {round_index}: collection stopped early ({stopped}); trained on what it "
                "collected; stopping: the budget covers no further collection")
            return records, sampler.source_params(release=True)
    if rounds.final_collect:
        result = collect(run_settings, policy, output_dir / "final" / "collect")
        log(f"rlao: final collection with the trained meta-agent -> {result.trajectories_path}")
    return records, sampler.source_params(release=True)
