"""The body `w4s-jax optimize` and `w4s-jax collect` share: check the config, run W4S, print a summary.

`rlao` and `learn` run the same up-front checks (`check_run_config`) and load the meta-agent they
both sample from and train the same way (`in_process_meta_agent`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from w4s_jax.config.config_checks import validate
from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s.seeds import seed_workflows
from w4s_jax.w4s.settings import check_meta_agent, loop_settings, rollout_plan


def check_run_config(config: Any) -> None:
    """Every field a run uses, checked before anything is loaded or paid for."""
    check_meta_agent(config)
    sections = ["executor", "task", "sampling", "sandbox", "output_dir"]
    if config.meta_agent.kind == "jax":
        sections += ["model", "mesh"]
    validate(config, sections=sections)
    loop_settings(config)
    from w4s_jax import tasks

    for name in dict.fromkeys(name for name, _ in rollout_plan(config)):
        if name not in tasks.known_tasks():
            raise ConfigError(f"w4s.tasks: unknown benchmark {name!r}; known: {', '.join(tasks.known_tasks())}")
        task = tasks.get_task(name, config.task.seed)
        seed_workflows(task, config.w4s.seed_workflows)
        # The data of both splits now (a DataError exits 2), not after the model is loaded or the run is paid.
        task.load(config.task.val_split, config.task.data_dir, config.task.val_limit)
        if config.w4s.test_eval:
            task.load("test", config.task.data_dir, config.task.test_limit)


def run(command: str, config: Any) -> None:
    """Checks `config`, runs W4S with the configured meta-agent and prints what `command` produced."""
    check_run_config(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from w4s_jax.w4s.budget import command_ledger
    from w4s_jax.w4s.meta_agent import policy_from_config
    from w4s_jax.w4s.runner import run_w4s

    # One budget for the command, kept across resume; an API meta-agent gets it at construction, the
    # in-process one (several hosts possible) says which host's share of the budget this is.
    if config.meta_agent.kind == "openai":
        ledger = command_ledger(config, config.output_dir)
        policy = policy_from_config(config, ledger)
    else:
        policy = policy_from_config(config)
        ledger = command_ledger(config, config.output_dir, policy.process_index, policy.process_count)
    try:
        result = run_w4s(config, policy, config.output_dir, ledger=ledger)
    finally:
        ledger.close()
    for task, best in result.best_workflows.items():
        test = "not run" if best.test_score is None else f"{best.test_score:.3f}"
        print(f"{command}: {task}: best validation {best.val_score:.3f} ({best.origin}, {best.path}); test {test}")
    if result.stopped_reason:
        print(f"{command}: stopped early: {result.stopped_reason}")
    print(f"{command}: {result.trajectory_count} trajectories -> {result.trajectories_path}")
    print(f"{command}: report -> {result.report_path}")


@dataclasses.dataclass(frozen=True)
class InProcessMetaAgent:
    """The meta-agent that one process both samples from and trains."""

    mesh: Any
    model_config: Any  # models.ModelConfig
    params: dict  # pure dict placed on `mesh`; the trainer's starting point
    tokenizer: Any  # rlao.examples.TrainingTokenizer
    sampler: Any  # sampling.sampler.Sampler holding `params`
    policy: Any  # w4s.policy.SamplerPolicy over `sampler`


def in_process_meta_agent(config: Any) -> InProcessMetaAgent:
    """Loads model.preset / model.path on the configured mesh with its tokenizer, sampler and policy."""
    from flax import nnx

    from w4s_jax.models import abstract_model
    from w4s_jax.parallel.mesh import mesh_from_config
    from w4s_jax.rlao.loading import load_meta_agent, load_tokenizer
    from w4s_jax.sampling.sampler import Sampler
    from w4s_jax.w4s.policy import SamplerPolicy

    mesh = mesh_from_config(config.mesh)
    tokenizer = load_tokenizer(config)
    model_config, params = load_meta_agent(config, mesh)
    graphdef, _ = abstract_model(model_config)
    sampler = Sampler(nnx.merge(graphdef, params), tokenizer, mesh, max_prompt_len=config.sampling.max_prompt_len)
    policy = SamplerPolicy(sampler, top_p=config.sampling.top_p, top_k=config.sampling.top_k)
    return InProcessMetaAgent(mesh, model_config, params, tokenizer, sampler, policy)
