"""The learning experiment, the paper's protocol: does RLAO make the meta-agent better at optimizing
workflows on problems, and on a task, that gave it no reward?

Stages (one process, one mesh; the sampler gets each set of parameters by `set_state`):

1. **Warm start**: the scripted teacher (teacher.py) answers in real W4S prompt states of the seen
   task's *train* pool with variants of the built-in workflows; the meta-agent is fine-tuned on the
   replies that passed their check with equal weights (`rlao.weight_mode=uniform`). This is `none`.
2. **Training** on the seen task's train pool (`task.name`, split `learning.train_split`), rounds
   1..`learning.rounds`: collect with the current parameters (rollout seeds `w4s.seeds`), train on
   that collection: `rlao` with w = exp(r / tau), `sft` with w = 1 (the same data, no reward), the same
   steps. Round 0's collection (of `none`) is shared by both arms.
3. **Evaluation**, for every seed of `learning.eval_seeds` and every evaluation task (the seen task's
   held-out problems: its `validate` and `test` splits; and `learning.unseen_task`, never trained on):
   each arm runs one W4S optimization (`learning.opt_turns` turns x `w4s.candidates_per_turn`
   candidates, rollout seed = the evaluation seed, its own executor seeded with it); the final
   workflow is chosen on validation and scored once on test. Arms: `rlao`, `sft`, `none` and
   `best_of_n` (the untrained `none` model sampling, in one turn, as many candidates as a trained arm
   sampled in training plus optimization: "RLAO picked a lucky sample" as a measured control).
4. **Baselines** (CoT, CoT-SC, self-refine, and program-of-thought or code generation with public
   tests) scored on the same test problems with each seed's executor.

Test problems and scores never reach a prompt, a reward or a choice: training collections use the
train pool, optimizations choose on validation, and test cases live only in each run's journal,
read back here after the choice is made.
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

from w4s_jax import tasks as task_registry
from w4s_jax.config_errors import ConfigError
from w4s_jax.learning.evaluation import baseline_names, optimization_entry, score_baselines
from w4s_jax.learning.executors import KINDS, ExperimentExecutors
from w4s_jax.learning.measures import best_seed_score, collection_metrics, read_candidates, strategy_measures
from w4s_jax.learning.teacher import VariantTeacher
from w4s_jax.models import abstract_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.examples import NothingToTrain, TrainingTokenizer
from w4s_jax.rlao.trainer import run_training
from w4s_jax.w4s.runner import run_w4s

ARMS = ("rlao", "sft", "none", "best_of_n")
TRAINED_ARMS = ("rlao", "sft")
TEACHER_SEED_OFFSET = 10_000  # the warm start's rollout seeds: 10000, 10001, ... (never in w4s.seeds)


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One evaluation task: where its data is, how much of it, and whether the meta-agent trained on it."""

    name: str
    data_dir: str
    val_limit: int
    test_limit: int
    seen: bool


def eval_seeds(config: ml_collections.ConfigDict) -> list[int]:
    try:
        seeds = [int(seed) for seed in str(config.learning.eval_seeds).split(",") if seed.strip()]
    except ValueError:
        raise ConfigError(f"learning.eval_seeds: expected comma-separated integers, got "
                          f"{config.learning.eval_seeds!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"learning.eval_seeds: expected distinct integers, got {config.learning.eval_seeds!r}")
    return seeds


def eval_tasks(config: ml_collections.ConfigDict) -> list[EvalTask]:
    learning = config.learning
    found = [EvalTask(config.task.name, config.task.data_dir, config.task.val_limit, config.task.test_limit, True)]
    if learning.unseen_task:
        found.append(EvalTask(learning.unseen_task, learning.unseen_data_dir, learning.unseen_val_limit,
                              learning.unseen_test_limit, False))
    return found


def check_learning_config(config: ml_collections.ConfigDict) -> None:
    """The fields the experiment's design relies on, before anything is loaded."""
    learning = config.learning
    if config.w4s.test_eval:
        raise ConfigError("w4s.test_eval: training collections use the train pool only and each evaluation scores "
                          "on test by itself; set it to False")
    if not config.lora.enabled:
        raise ConfigError("lora.enabled: the arms train LoRA adapters on shared base parameters; set it to True")
    if config.train.steps < 1:
        raise ConfigError(f"train.steps: every training round runs a fixed number of steps; got {config.train.steps}")
    if learning.rounds < 1:
        raise ConfigError(f"learning.rounds: must be >= 1, got {learning.rounds}")
    if learning.opt_turns < 1:
        raise ConfigError(f"learning.opt_turns: must be >= 1, got {learning.opt_turns}")
    if learning.warm_start_rollouts < 1 or learning.warm_start_steps < 1:
        raise ConfigError("learning.warm_start_rollouts/warm_start_steps: both must be >= 1, got "
                          f"{learning.warm_start_rollouts}/{learning.warm_start_steps}")
    if config.rlao.weight_mode == "uniform":
        raise ConfigError("rlao.weight_mode: the rlao arm weights by reward; 'uniform' is the sft arm's mode")
    if learning.train_split != "train":
        raise ConfigError(f"learning.train_split: training collections are rewarded on the seen task's train "
                          f"pool; expected 'train', got {learning.train_split!r}")
    if learning.executor not in KINDS:
        raise ConfigError(f"learning.executor: must be one of {KINDS}, got {learning.executor!r}")
    if learning.unseen_task == config.task.name:
        raise ConfigError(f"learning.unseen_task: {learning.unseen_task!r} is the seen task (task.name); "
                          "name another task, or '' for none")
    if learning.unseen_task and learning.unseen_task not in task_registry.known_tasks():
        raise ConfigError(f"learning.unseen_task: unknown benchmark {learning.unseen_task!r}; known: "
                          f"{', '.join(task_registry.known_tasks())}")
    eval_seeds(config)
    if set(eval_seeds(config)) & {learning.train_seed}:
        raise ConfigError(f"learning.train_seed: {learning.train_seed} is also an evaluation seed; "
                          "the training executor must not share an evaluation's draws")


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
                 ledger: Any, log: Callable[[str], None] = print) -> None:
        check_learning_config(config)
        self.config = config
        self.model_config, self.mesh, self.base_params = model_config, mesh, params
        self.tokenizer, self.sampler, self.policy = tokenizer, sampler, policy
        self.ledger = ledger  # the command's one budget (w4s/budget.py): every collection, optimization, baseline
        self.output_dir = pathlib.Path(output_dir)
        self.log = log
        self.graphdef, _ = abstract_model(model_config)
        self.executors = ExperimentExecutors(config.learning.executor, config.executor.base_url,
                                             self.output_dir / "executor_cache")
        self.stage_times: dict[str, float] = {}

    # ---------------------------------------------------------------- configs of the runs

    def _executor_fields(self, task: str, data_dir: str, seed: int, splits: tuple[str, ...]) -> dict:
        return {"executor__base_url": self.executors.url(task, data_dir, seed, splits),
                "executor__cache_path": self.executors.cache_path(task, seed)}

    def training_config(self, **fields: Any) -> ml_collections.ConfigDict:
        """A W4S run on the seen task's train pool (warm start and training collections)."""
        learning, task = self.config.learning, self.config.task
        return with_fields(self.config, task__val_split=learning.train_split, task__val_limit=learning.train_limit,
                           **self._executor_fields(task.name, task.data_dir, learning.train_seed,
                                                   (learning.train_split,)), **fields)

    def optimization_config(self, task: EvalTask, seed: int, *, turns: int, candidates: int) -> ml_collections.ConfigDict:
        """One evaluation optimization: validation for feedback, rewards and the choice; test once."""
        return with_fields(
            self.config, task__name=task.name, task__data_dir=task.data_dir, task__val_split="validate",
            task__val_limit=task.val_limit, task__test_limit=task.test_limit, w4s__seeds=str(seed),
            w4s__turns_per_episode=turns, w4s__max_iterations=turns, w4s__candidates_per_turn=candidates,
            w4s__test_eval=True,
            **self._executor_fields(task.name, task.data_dir, seed, ("validate", "test")))

    # ---------------------------------------------------------------- the primitives

    def _set_params(self, params: dict) -> None:
        self.sampler.set_state(nnx.merge(self.graphdef, params))

    def collect(self, params: dict, directory: pathlib.Path) -> dict:
        """One training collection with `params`: its metrics and trajectory file."""
        started = time.perf_counter()
        self._set_params(params)
        result = run_w4s(self.training_config(), self.policy, directory, ledger=self.ledger)
        records = read_candidates(result.trajectories_path)
        metrics = collection_metrics(records, best_seed_score(result.output_dir))
        entry = {"collection": str(result.output_dir), "trajectories": str(result.trajectories_path),
                 "wall_s": time.perf_counter() - started, "strategy": strategy_measures(records), **metrics}
        self.log(f"learn: collected {directory.relative_to(self.output_dir)}: {_summary(metrics)} "
                 f"({entry['wall_s']:.0f} s)")
        return entry

    def train(self, params: dict, data: str, directory: pathlib.Path, *, weight_mode: str, steps: int,
              learning_rate: float) -> tuple[dict | None, dict]:
        """(trained parameters, what happened); None when no candidate of `data` may be trained on."""
        started = time.perf_counter()
        config = with_fields(self.config, rlao__weight_mode=weight_mode, train__steps=steps,
                             optimizer__learning_rate=learning_rate)
        try:
            result = run_training(config, model_config=self.model_config, mesh=self.mesh, model_params=params,
                                  tokenizer=self.tokenizer, data=[data], output_dir=directory)
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
        """Teacher collection on the train pool + SFT: (the `none` parameters, what happened)."""
        started = time.perf_counter()
        seeds = ",".join(str(TEACHER_SEED_OFFSET + i) for i in range(self.config.learning.warm_start_rollouts))
        result = run_w4s(self.training_config(w4s__seeds=seeds), VariantTeacher(),
                         self.output_dir / "warm_start" / "collect", ledger=self.ledger)
        records = read_candidates(result.trajectories_path)
        metrics = collection_metrics(records, best_seed_score(result.output_dir))
        self.log(f"learn: warm-start data (teacher): {_summary(metrics)}")
        params, info = self.train(self.base_params, str(result.trajectories_path),
                                  self.output_dir / "warm_start" / "train", weight_mode="uniform",
                                  steps=self.config.learning.warm_start_steps,
                                  learning_rate=self.config.learning.warm_start_learning_rate)
        if params is None:
            raise RuntimeError("learn: no teacher workflow passed its check; the warm start has nothing to train on "
                               f"(see {result.output_dir / 'journal.jsonl'})")
        info |= {"teacher": metrics, "teacher_strategy": strategy_measures(records),
                 "wall_s": time.perf_counter() - started}
        return params, info

    def training(self, warm: dict) -> tuple[dict[str, list[dict]], dict[str, dict]]:
        """Rounds of collect -> train for each trained arm: (per arm its rounds, per arm final params)."""
        shared = self.collect(warm, self.output_dir / "train" / "round_0" / "collect")
        rounds: dict[str, list[dict]] = {}
        finals: dict[str, dict] = {}
        for arm in TRAINED_ARMS:
            params, collection, entries = warm, shared, []
            weight_mode = "uniform" if arm == "sft" else self.config.rlao.weight_mode
            for round_index in range(1, self.config.learning.rounds + 1):
                base = self.output_dir / "train" / arm / f"round_{round_index}"
                new_params, trained = self.train(params, collection["trajectories"], base / "train",
                                                 weight_mode=weight_mode, steps=self.config.train.steps,
                                                 learning_rate=self.config.optimizer.learning_rate)
                entries.append({"round": round_index - 1, **collection, "trained": trained})
                params = params if new_params is None else new_params
                if round_index < self.config.learning.rounds:
                    collection = self.collect(params, base / "collect")
            rounds[arm], finals[arm] = entries, params
        return rounds, finals

    def best_of_n(self) -> int:
        """The control's candidates: what a trained arm sampled in training plus one optimization."""
        if self.config.learning.best_of_n:
            return int(self.config.learning.best_of_n)
        per_turn = self.config.w4s.candidates_per_turn
        per_collection = len(str(self.config.w4s.seeds).split(",")) * per_turn * self.config.w4s.turns_per_episode
        return self.config.learning.rounds * per_collection + self.config.learning.opt_turns * per_turn

    def evaluate(self, arm_params: dict[str, dict]) -> dict[str, dict[str, dict[str, dict]]]:
        """results[task][arm][seed]: one optimization each (module doc, stage 3), seed by seed, so that
        a run cut short still has every arm of its finished seeds."""
        tasks = eval_tasks(self.config)
        results: dict[str, dict[str, dict[str, dict]]] = {task.name: {arm: {} for arm in ARMS} for task in tasks}
        for seed in eval_seeds(self.config):
            for arm in ARMS:
                self._set_params(arm_params[arm])
                turns, candidates = self.config.learning.opt_turns, self.config.w4s.candidates_per_turn
                if arm == "best_of_n":
                    turns, candidates = 1, self.best_of_n()
                for task in tasks:
                    started = time.perf_counter()
                    directory = self.output_dir / "eval" / task.name / arm / f"seed_{seed}"
                    run = run_w4s(self.optimization_config(task, seed, turns=turns, candidates=candidates),
                                  self.policy, directory, ledger=self.ledger)
                    entry = optimization_entry(run, task.name) | {"wall_s": time.perf_counter() - started,
                                                                   "turns": turns, "candidates_per_turn": candidates}
                    results[task.name][arm][str(seed)] = entry
                    self.log(f"learn: {task.name} {arm} seed {seed}: chose {entry['chosen']} (validation "
                             f"{_score(entry['val_score'])}, test {_score(entry['test_score'])}, "
                             f"{entry['wall_s']:.0f} s)")
        return results

    def baselines(self) -> dict[str, dict[str, dict[str, dict]]]:
        """results[task][workflow][seed]: each baseline scored on the test split with each seed's executor."""
        results: dict[str, dict[str, dict[str, dict]]] = {}
        for task in eval_tasks(self.config):
            task_object = task_registry.get_task(task.name, self.config.task.seed)
            examples = task_object.load("test", task.data_dir, task.test_limit)
            names = baseline_names(task_object)
            per_name: dict[str, dict[str, dict]] = {name: {} for name in names}
            for seed in eval_seeds(self.config):
                config = self.optimization_config(task, seed, turns=1, candidates=1)
                scored = score_baselines(names, task_object, examples, config.sandbox, config.executor,
                                         self.output_dir / "baselines" / task.name / f"seed_{seed}", self.ledger)
                for name, entry in scored.items():
                    per_name[name][str(seed)] = entry
                self.log(f"learn: baselines {task.name} seed {seed}: " +
                         ", ".join(f"{name} {entry['test_score']:.3f}" for name, entry in scored.items()))
            results[task.name] = per_name
        return results

    def run(self) -> dict:
        started = time.perf_counter()
        try:
            stage = time.perf_counter()
            warm, warm_info = self.warm_start()
            self.stage_times["warm_start"] = time.perf_counter() - stage
            stage = time.perf_counter()
            training, finals = self.training(warm)
            self.stage_times["training"] = time.perf_counter() - stage
            stage = time.perf_counter()
            baselines = self.baselines()
            self.stage_times["baselines"] = time.perf_counter() - stage
            stage = time.perf_counter()
            evaluation = self.evaluate({"rlao": finals["rlao"], "sft": finals["sft"], "none": warm,
                                        "best_of_n": warm})
            self.stage_times["evaluation"] = time.perf_counter() - stage
        finally:
            self.executors.close()
        return {"training": training, "warm_start": warm_info, "evaluation": evaluation, "baselines": baselines,
                "tasks": [dataclasses.asdict(task) for task in eval_tasks(self.config)],
                "eval_seeds": eval_seeds(self.config), "best_of_n": self.best_of_n(),
                "stage_times_s": self.stage_times, "experiment_wall_s": time.perf_counter() - started}


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(metrics: dict) -> str:
    def pct(name: str) -> str:
        return f"{100 * metrics[name]:.0f}%"

    score = metrics["mean_val_score_passed"]
    return (f"{metrics['candidates']} candidates, valid {pct('valid_rate')}, check passed {pct('check_pass_rate')}, "
            f"mean score {metrics['mean_val_score']:.3f} (passed only: {'-' if score is None else f'{score:.3f}'}), "
            f"mean reward {metrics['mean_reward']:.3f}")
