"""The learning experiment: does RLAO make the meta-agent write better workflows than the controls?

Stages (all in one process, on one mesh; the sampler gets each set of parameters by `set_state`):

1. **Warm start** (its own stage): the scripted teacher (teacher.py) answers in real W4S prompt
   states with variants of the built-in workflows; the runner checks and evaluates them like any
   candidates, and the meta-agent is fine-tuned on the replies that passed their check with equal
   weights (`rlao.weight_mode=uniform`) for `learning.warm_start_steps` steps. Its rollouts use their
   own seeds, disjoint from `w4s.seeds`, and no reward reaches its loss.
2. **Arms**, from each start (`base`: the model as loaded; `warm`: after the warm start), with the
   same rollout seeds `w4s.seeds` in every collection:
   - `rlao`: each round trains on the previous collection's kept candidates with w = exp(r / tau);
   - `sft`: the same, with w = 1 (plain supervised fine-tuning on the same kind of data);
   - `none`: no training.
   Round 0 is the start's own collection, shared by its three arms; round r is collected after r
   trainings. Training uses only the last collection (on-policy), `train.steps` fixed steps per
   round (the same compute for both trained arms), LoRA adapters merged after each round.

A collection is a pure function of the parameters and the seeds (the sampler seeds every reply,
the executor's answers are cached per request in one cache for the whole experiment), so parameters
that did not change are not collected again: the `none` arm's later rounds, and a trained arm's
round whose training found nothing to train on (no candidate passed its check), reuse the earlier
collection and say so (`reused_from`).

Only validation data is used: rewards, feedback and scores come from the validation split, and the
experiment refuses `w4s.test_eval=True`.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

import ml_collections
from flax import nnx

from w4s_jax.config.errors import ConfigError
from w4s_jax.learning.measures import best_seed_score, collection_metrics, read_candidates
from w4s_jax.learning.teacher import VariantTeacher
from w4s_jax.models import abstract_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.examples import NothingToTrain, TrainingTokenizer
from w4s_jax.rlao.trainer import run_training
from w4s_jax.w4s.runner import run_w4s

ARMS = ("rlao", "sft", "none")
STARTS = ("base", "warm")
TEACHER_SEED_OFFSET = 10_000  # the warm start's rollout seeds: 10000, 10001, ... (never in w4s.seeds)


@dataclasses.dataclass
class Collection:
    """One collection's outcome; `key` names the parameters that produced it."""

    key: str
    directory: pathlib.Path
    metrics: dict
    wall_s: float

    @property
    def trajectories(self) -> pathlib.Path:
        return self.directory / "trajectories.jsonl"


def check_learning_config(config: ml_collections.ConfigDict) -> None:
    """The fields the experiment's design relies on, before anything is loaded."""
    if config.w4s.test_eval:
        raise ConfigError("w4s.test_eval: the learning experiment uses validation data only; set it to False")
    if not config.lora.enabled:
        raise ConfigError("lora.enabled: the arms train LoRA adapters on shared base parameters; set it to True")
    if config.train.steps < 1:
        raise ConfigError(f"train.steps: every training round runs a fixed number of steps; got {config.train.steps}")
    if config.learning.rounds < 1:
        raise ConfigError(f"learning.rounds: must be >= 1, got {config.learning.rounds}")
    if config.learning.warm_start_rollouts < 1 or config.learning.warm_start_steps < 1:
        raise ConfigError("learning.warm_start_rollouts/warm_start_steps: both must be >= 1, got "
                          f"{config.learning.warm_start_rollouts}/{config.learning.warm_start_steps}")
    if config.rlao.weight_mode == "uniform":
        raise ConfigError("rlao.weight_mode: the rlao arm weights by reward; 'uniform' is the sft arm's mode")


def with_fields(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
    """A copy of `config` with `section__name=value` fields replaced."""
    copied = copy.deepcopy(config)
    for name, value in fields.items():
        section, field = name.split("__")
        copied[section][field] = value
    return copied


class Experiment:
    """Runs the stages (module doc); `run()` returns the results that report.py writes."""

    def __init__(self, config: ml_collections.ConfigDict, *, model_config: ModelConfig, mesh: Any, params: dict,
                 tokenizer: TrainingTokenizer, sampler: Any, policy: Any, output_dir: str | pathlib.Path,
                 log: Callable[[str], None] = print) -> None:
        check_learning_config(config)
        self.config = config
        self.model_config, self.mesh, self.base_params = model_config, mesh, params
        self.tokenizer, self.sampler, self.policy = tokenizer, sampler, policy
        self.output_dir = pathlib.Path(output_dir)
        self.log = log
        self.graphdef, _ = abstract_model(model_config)
        self.collections: dict[str, Collection] = {}
        self.stage_times: dict[str, float] = {}

    # ---------------------------------------------------------------- the two primitives

    def collect(self, key: str, params: dict, directory: pathlib.Path) -> tuple[Collection, bool]:
        """The collection of parameters `key` (run now, or the earlier one: True when reused)."""
        if key in self.collections:
            return self.collections[key], True
        started = time.perf_counter()
        self.sampler.set_state(nnx.merge(self.graphdef, params))
        result = run_w4s(self.config, self.policy, directory)
        metrics = collection_metrics(read_candidates(result.trajectories_path), best_seed_score(result.output_dir))
        collection = Collection(key, result.output_dir, metrics, time.perf_counter() - started)
        self.collections[key] = collection
        self.log(f"learn: collected {key}: {_summary(metrics)} ({collection.wall_s:.0f} s)")
        return collection, False

    def train(self, params: dict, data: pathlib.Path, directory: pathlib.Path, *, weight_mode: str, steps: int,
              learning_rate: float) -> tuple[dict | None, dict]:
        """(trained parameters, what happened); None when no candidate of `data` may be trained on."""
        started = time.perf_counter()
        config = with_fields(self.config, rlao__weight_mode=weight_mode, train__steps=steps,
                             optimizer__learning_rate=learning_rate)
        try:
            result = run_training(config, model_config=self.model_config, mesh=self.mesh, model_params=params,
                                  tokenizer=self.tokenizer, data=[str(data)], output_dir=directory)
        except NothingToTrain:
            return None, {"kept": 0, "steps": 0, "wall_s": 0.0, "skipped": "no candidate passed its check"}
        if result.preempted:
            raise SystemExit(f"learn: preempted while training {directory}; rerun with the same output_dir to resume")
        report = result.data_report
        info = {"kept": report.records - report.left_out, "examples": report.examples, "steps": result.steps_done,
                "weight_mode": weight_mode, "wall_s": time.perf_counter() - started,
                "last_loss": result.last_metrics.get("loss"), "mean_weight": result.last_metrics.get("mean_weight"),
                "data_report": report.to_dict()}
        return result.model_params(), info

    # ---------------------------------------------------------------- the stages

    def warm_start(self) -> tuple[dict, dict]:
        """Teacher collection + SFT: (warm parameters, what happened)."""
        started = time.perf_counter()
        seeds = ",".join(str(TEACHER_SEED_OFFSET + i) for i in range(self.config.learning.warm_start_rollouts))
        teacher_config = with_fields(self.config, w4s__seeds=seeds)
        result = run_w4s(teacher_config, VariantTeacher(), self.output_dir / "warm_start" / "collect")
        metrics = collection_metrics(read_candidates(result.trajectories_path), best_seed_score(result.output_dir))
        self.log(f"learn: warm-start data (teacher): {_summary(metrics)}")
        params, info = self.train(self.base_params, result.trajectories_path, self.output_dir / "warm_start" / "train",
                                  weight_mode="uniform", steps=self.config.learning.warm_start_steps,
                                  learning_rate=self.config.learning.warm_start_learning_rate)
        if params is None:
            raise RuntimeError("learn: no teacher workflow passed its check; the warm start has nothing to train on "
                               f"(see {result.output_dir / 'journal.jsonl'})")
        info |= {"teacher": metrics, "wall_s": time.perf_counter() - started}
        return params, info

    def arm(self, start: str, arm: str, params: dict) -> list[dict]:
        """Rounds 0..learning.rounds of one arm from one start."""
        key, rounds = start, []
        collection, reused = self.collect(key, params, self.output_dir / start / "round_0" / "collect")
        rounds.append(_round_entry(0, collection, reused, None))
        for round_index in range(1, self.config.learning.rounds + 1):
            trained = None
            if arm != "none":
                weight_mode = "uniform" if arm == "sft" else self.config.rlao.weight_mode
                train_dir = self.output_dir / start / arm / f"round_{round_index - 1}" / "train"
                new_params, trained = self.train(params, collection.trajectories, train_dir, weight_mode=weight_mode,
                                                 steps=self.config.train.steps,
                                                 learning_rate=self.config.optimizer.learning_rate)
                if new_params is not None:
                    params, key = new_params, f"{start}/{arm}/{round_index}"
            directory = self.output_dir / start / arm / f"round_{round_index}" / "collect"
            collection, reused = self.collect(key, params, directory)
            rounds.append(_round_entry(round_index, collection, reused, trained))
        return rounds

    def run(self) -> dict:
        started = time.perf_counter()
        results: dict[str, dict[str, list[dict]]] = {}
        warm_info: dict = {}
        for start in STARTS:
            if start == "warm":
                stage = time.perf_counter()
                params, warm_info = self.warm_start()
                self.stage_times["warm_start"] = time.perf_counter() - stage
            else:
                params = self.base_params
            results[start] = {}
            for arm in ARMS:
                stage = time.perf_counter()
                results[start][arm] = self.arm(start, arm, params)
                self.stage_times[f"{start}/{arm}"] = time.perf_counter() - stage
        return {"results": results, "warm_start": warm_info, "stage_times_s": self.stage_times,
                "experiment_wall_s": time.perf_counter() - started}


def _round_entry(round_index: int, collection: Collection, reused: bool, trained: dict | None) -> dict:
    return {"round": round_index, "params": collection.key, "collection": str(collection.directory),
            "reused_from": str(collection.directory) if reused else None,
            "collect_wall_s": 0.0 if reused else collection.wall_s, "trained": trained, **collection.metrics}


def _summary(metrics: dict) -> str:
    def pct(name: str) -> str:
        return f"{100 * metrics[name]:.0f}%"

    score = metrics["mean_val_score_passed"]
    return (f"{metrics['candidates']} candidates, valid {pct('valid_rate')}, check passed {pct('check_pass_rate')}, "
            f"mean score {metrics['mean_val_score']:.3f} (passed only: {'-' if score is None else f'{score:.3f}'}), "
            f"mean reward {metrics['mean_reward']:.3f}")
