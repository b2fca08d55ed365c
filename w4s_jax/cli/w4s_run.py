"""The body `w4s-jax optimize` and `w4s-jax collect` share: check the config, run W4S, print a summary.

`checked_run_settings` is the one way a command that runs W4S (optimize, collect, rlao, demo, learn)
turns its config into `RunSettings`: every field checked, the data of both splits loaded once, and
the config locked, before anything is loaded or paid for.
"""

from __future__ import annotations

import logging

import ml_collections

from w4s_jax.config.config_checks import validate
from w4s_jax.config.typed import run_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s.seeds import seed_workflows
from w4s_jax.w4s.settings import RunSettings


def check_run_settings(settings: RunSettings) -> None:
    """The tasks exist, their seed workflows too, and the data of both splits loads (a DataError
    exits 2 now, not after the model is loaded or the run is paid)."""
    from w4s_jax import tasks

    for name in settings.task_names():
        if name not in tasks.known_tasks():
            raise ConfigError(f"w4s.tasks: unknown benchmark {name!r}; known: {', '.join(tasks.known_tasks())}")
        task = tasks.get_task(name, settings.task.seed)
        seed_workflows(task, settings.w4s.seed_workflows)
        task.load(settings.task.val_split, settings.task.data_dir, settings.task.val_limit)
        if settings.w4s.test_eval:
            task.load("test", settings.task.data_dir, settings.task.test_limit)


def checked_run_settings(config: ml_collections.ConfigDict, *, check_data: bool = True) -> RunSettings:
    """Every field a run uses, checked; the config locked; its typed settings. `check_data=False`: the
    caller runs only runs derived from these settings and checks their data itself (`learn`)."""
    sections = ["executor", "task", "sampling", "sandbox", "output_dir"]
    if config.meta_agent.kind == "jax":
        sections += ["model", "mesh"]
    settings = run_settings(config)
    if settings.meta_agent.kind == "jax" and not settings.model.path:
        raise ConfigError("model.path: meta_agent.kind='jax' needs weights (a safetensors directory or a "
                          ".gguf file); a randomly initialised meta-agent writes no workflows")
    validate(config, sections=sections)
    if check_data:
        check_run_settings(settings)
    config.lock()
    return settings


def run(command: str, config: ml_collections.ConfigDict) -> None:
    """Checks `config`, runs W4S with the configured meta-agent and prints what `command` produced."""
    settings = checked_run_settings(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from w4s_jax.w4s.budget import command_ledger
    from w4s_jax.w4s.meta_agent import meta_agent_policy
    from w4s_jax.w4s.runner import run_w4s

    # One budget for the command, kept across resume; an API meta-agent gets it at construction, the
    # in-process one (several hosts possible) says which host's share of the budget this is.
    if settings.meta_agent.kind == "openai":
        ledger = command_ledger(settings.executor, settings.output_dir)
        policy = meta_agent_policy(settings, settings.output_dir, ledger)
    else:
        policy = meta_agent_policy(settings, settings.output_dir)
        ledger = command_ledger(settings.executor, settings.output_dir, policy.process_index, policy.process_count)
    try:
        result = run_w4s(settings, policy, settings.output_dir, ledger=ledger)
    finally:
        ledger.close()
    for task, best in result.best_workflows.items():
        test = "not run" if best.test_score is None else f"{best.test_score:.3f}"
        print(f"{command}: {task}: best validation {best.val_score:.3f} ({best.origin}, {best.path}); test {test}")
    if result.stopped_reason:
        print(f"{command}: stopped early: {result.stopped_reason}")
    print(f"{command}: {result.trajectory_count} trajectories -> {result.trajectories_path}")
    print(f"{command}: report -> {result.report_path}")
