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

import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

from flax import nnx

from w4s_jax import tasks as task_registry
from w4s_jax.learning.evaluation import baseline_names, optimization_entry, score_baselines
from w4s_jax.learning.executors import ExperimentExecutors
from w4s_jax.learning.measures import best_seed_score, collection_metrics, read_candidates, strategy_measures
from w4s_jax.learning.settings import ExperimentSettings
from w4s_jax.learning.teacher import VariantTeacher
from w4s_jax.models import abstract_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.rlao.examples import NothingToTrain, TrainingTokenizer
from w4s_jax.rlao.trainer import load_training_data, run_training
from w4s_jax.w4s.runner import run_w4s
from w4s_jax.w4s.settings import RunSettings

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


def eval_tasks(settings: ExperimentSettings) -> list[EvalTask]:
    learning, task = settings.learning, settings.run.task
    found = [EvalTask(task.name, task.data_dir, task.val_limit, task.test_limit, True)]
    if learning.unseen_task:
        found.append(EvalTask(learning.unseen_task, learning.unseen_data_dir, learning.unseen_val_limit,
                              learning.unseen_test_limit, False))
    return found


def training_run(settings: ExperimentSettings, **fields: Any) -> RunSettings:
    """A W4S run on the seen task's train pool (warm start and training collections), before its executor."""
    learning = settings.learning
    return settings.run.replace(task__val_split=learning.train_split, task__val_limit=learning.train_limit, **fields)


def optimization_run(settings: ExperimentSettings, task: EvalTask, seed: int, *, turns: int,
                     candidates: int) -> RunSettings:
    """One evaluation optimization: validation for feedback, rewards and the choice; test once."""
    return settings.run.replace(
        task__name=task.name, task__data_dir=task.data_dir, task__val_split="validate", task__val_limit=task.val_limit,
        task__test_limit=task.test_limit, w4s__seeds=str(seed), w4s__turns_per_episode=turns,
        w4s__max_iterations=turns, w4s__candidates_per_turn=candidates, w4s__test_eval=True)


class Experiment:
    """Runs the stages (module doc); `run()` returns the results that report.py writes."""

    def __init__(self, settings: ExperimentSettings, *, model_config: ModelConfig, mesh: Any, params: dict,
                 tokenizer: TrainingTokenizer, sampler: Any, policy: Any, output_dir: str | pathlib.Path,
                 ledger: Any, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.learning = settings.learning
        self.model_config, self.mesh, self.base_params = model_config, mesh, params
        self.tokenizer, self.sampler, self.policy = tokenizer, sampler, policy
        self.ledger = ledger  # the command's one budget (w4s/budget.py): every collection, optimization, baseline
        self.output_dir = pathlib.Path(output_dir)
        self.log = log
        self.graphdef, _ = abstract_model(model_config)
        self.executors = ExperimentExecutors(settings.learning.executor, settings.run.executor.base_url,
                                             self.output_dir / "executor_cache")
        self.stage_times: dict[str, float] = {}

    # ---------------------------------------------------------------- configs of the runs

    def _with_executor(self, run: RunSettings, seed: int, splits: tuple[str, ...]) -> RunSettings:
        """`run` against this task's and seed's executor (its own endpoint and cache file)."""
        task = run.task
        return run.replace(executor__base_url=self.executors.url(task.name, task.data_dir, seed, splits),
                           executor__cache_path=self.executors.cache_path(task.name, seed))

    def training_settings(self, **fields: Any) -> RunSettings:
        """A W4S run on the seen task's train pool (warm start and training collections)."""
        return self._with_executor(training_run(self.settings, **fields), self.learning.train_seed,
                                   (self.learning.train_split,))

    def optimization_settings(self, task: EvalTask, seed: int, *, turns: int, candidates: int) -> RunSettings:
        """One evaluation optimization against its seed's executor."""
        return self._with_executor(optimization_run(self.settings, task, seed, turns=turns, candidates=candidates),
                                   seed, ("validate", "test"))

    # ---------------------------------------------------------------- the primitives

    def _set_params(self, params: dict) -> None:
        self.sampler.set_state(nnx.merge(self.graphdef, params))

    def collect(self, params: dict, directory: pathlib.Path) -> dict:
        """One training collection with `params`: its metrics and trajectory file."""
        started = time.perf_counter()
        self._set_params(params)
        result = run_w4s(self.training_settings(), self.policy, directory, ledger=self.ledger)
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
        training = self.settings.training
        training = dataclasses.replace(
            training, rlao=dataclasses.replace(training.rlao, weight_mode=weight_mode),
            train=dataclasses.replace(training.train, steps=steps),
            optimizer=dataclasses.replace(training.optimizer, learning_rate=learning_rate))
        try:
            training_data = load_training_data(training, self.tokenizer, [data])
        except NothingToTrain:
            return None, {"kept": 0, "steps": 0, "wall_s": 0.0, "skipped": "no candidate passed its check"}
        result = run_training(training, model_config=self.model_config, mesh=self.mesh, model_params=params,
                              data=training_data, output_dir=directory)
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
        seeds = ",".join(str(TEACHER_SEED_OFFSET + i) for i in range(self.learning.warm_start_rollouts))
        result = run_w4s(self.training_settings(w4s__seeds=seeds), VariantTeacher(),
                         self.output_dir / "warm_start" / "collect", ledger=self.ledger)
        records = read_candidates(result.trajectories_path)
        metrics = collection_metrics(records, best_seed_score(result.output_dir))
        self.log(f"learn: warm-start data (teacher): {_summary(metrics)}")
        params, info = self.train(self.base_params, str(result.trajectories_path),
                                  self.output_dir / "warm_start" / "train", weight_mode="uniform",
                                  steps=self.learning.warm_start_steps,
                                  learning_rate=self.learning.warm_start_learning_rate)
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
            weight_mode = "uniform" if arm == "sft" else self.settings.training.rlao.weight_mode
            for round_index in range(1, self.learning.rounds + 1):
                base = self.output_dir / "train" / arm / f"round_{round_index}"
                new_params, trained = self.train(params, collection["trajectories"], base / "train",
                                                 weight_mode=weight_mode, steps=self.settings.training.train.steps,
                                                 learning_rate=self.settings.training.optimizer.learning_rate)
                entries.append({"round": round_index - 1, **collection, "trained": trained})
                params = params if new_params is None else new_params
                if round_index < self.learning.rounds:
                    collection = self.collect(params, base / "collect")
            rounds[arm], finals[arm] = entries, params
        return rounds, finals

    def best_of_n(self) -> int:
        """The control's candidates: what a trained arm sampled in training plus one optimization."""
        if self.learning.best_of_n:
            return self.learning.best_of_n
        w4s = self.settings.run.w4s
        per_turn = w4s.candidates_per_turn
        per_collection = len(w4s.seed_list()) * per_turn * w4s.turns_per_episode
        return self.learning.rounds * per_collection + self.learning.opt_turns * per_turn

    def evaluate(self, arm_params: dict[str, dict]) -> dict[str, dict[str, dict[str, dict]]]:
        """results[task][arm][seed]: one optimization each (module doc, stage 3), seed by seed, so that
        a run cut short still has every arm of its finished seeds."""
        tasks = eval_tasks(self.settings)
        results: dict[str, dict[str, dict[str, dict]]] = {task.name: {arm: {} for arm in ARMS} for task in tasks}
        for seed in self.learning.seed_list():
            for arm in ARMS:
                self._set_params(arm_params[arm])
                turns, candidates = self.learning.opt_turns, self.settings.run.w4s.candidates_per_turn
                if arm == "best_of_n":
                    turns, candidates = 1, self.best_of_n()
                for task in tasks:
                    started = time.perf_counter()
                    directory = self.output_dir / "eval" / task.name / arm / f"seed_{seed}"
                    run = run_w4s(self.optimization_settings(task, seed, turns=turns, candidates=candidates),
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
        for task in eval_tasks(self.settings):
            task_object = task_registry.get_task(task.name, self.settings.run.task.seed)
            examples = task_object.load("test", task.data_dir, task.test_limit)
            names = baseline_names(task_object)
            per_name: dict[str, dict[str, dict]] = {name: {} for name in names}
            for seed in self.learning.seed_list():
                run = self.optimization_settings(task, seed, turns=1, candidates=1)
                scored = score_baselines(names, task_object, examples, run.sandbox, run.executor,
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
                "tasks": [dataclasses.asdict(task) for task in eval_tasks(self.settings)],
                "eval_seeds": self.learning.seed_list(), "best_of_n": self.best_of_n(),
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
