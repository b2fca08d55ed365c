"""`run_w4s(settings, policy, output_dir) -> RunResult`: the whole W4S run behind `optimize`, `collect`,
the RLAO rounds and the demo.

Order of events: rollouts (tasks x seeds) run concurrently against one executor client, one sandbox
and one generation batcher; when all have ended, each task's final workflow is chosen by validation
score alone, and only then scored once on the test split. Trajectories and the report are written
last. Rerun with the same output_dir, a killed run resumes from its journal (see journal.py).
One `PhaseClock` times the run's phases (generation, evaluation, executor wait, and how much of
generation overlapped evaluation); each process appends them to `phase_times.json`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import pathlib
from typing import Any

from w4s_jax import crash_points, phase_clock
from w4s_jax import tasks as task_registry
from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.accounting import Ledger
from w4s_jax.executor.errors import BudgetExceeded
from w4s_jax.tasks.settings import TaskSettings
from w4s_jax.w4s.archive import Archive
from w4s_jax.w4s.budget import command_ledger
from w4s_jax.w4s.episode import Rollout
from w4s_jax.w4s.evaluations import JournaledEvaluations
from w4s_jax.w4s.generation_batcher import GenerationBatcher
from w4s_jax.w4s.hosts import choose_across_hosts, first_reason, gather_records, host_output_dir, host_share
from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.policy import ROLE as META_ROLE
from w4s_jax.w4s.policy import Policy
from w4s_jax.w4s.progress import ProgressView
from w4s_jax.w4s.report import BestWorkflow, plot_curves, write_report
from w4s_jax.w4s.sandbox_evaluator import SandboxEvaluator
from w4s_jax.w4s.seeds import seed_workflows
from w4s_jax.w4s.settings import RunSettings, check_resume_fingerprint
from w4s_jax.w4s.trajectories import trajectory_records, write_trajectories

LOG = logging.getLogger("w4s_jax.w4s")


@dataclasses.dataclass(frozen=True)
class RunResult:
    output_dir: pathlib.Path
    trajectories_path: pathlib.Path
    report_path: pathlib.Path
    journal_path: pathlib.Path
    best_workflows: dict[str, BestWorkflow]
    trajectory_count: int
    stopped_reason: str


def run_w4s(settings: RunSettings, policy: Policy, output_dir: str | pathlib.Path, *,
            ledger: Ledger | None = None) -> RunResult:
    """Synchronous entry point (one event loop for the whole run). `ledger`: the command's budget
    (w4s.budget.command_ledger), shared by all its collections and its meta-agent policy; None = a
    budget of this collection alone, journaled in its output_dir."""
    return asyncio.run(run_w4s_async(settings, policy, output_dir, ledger=ledger))


async def _run_rollout(rollout: Rollout) -> None:
    try:
        await rollout.run()
    except BudgetExceeded as error:
        rollout.stopped_reason = str(error)
        LOG.warning("%s stopped: %s", rollout.rollout_id, error)


def _choose(task_name: str, rollouts: list[Rollout]) -> BestWorkflow | None:
    """The task's best workflow among `rollouts` by validation score (earliest rollout and entry win
    ties); None when nothing was scored (a run stopped by the budget before its seeds were evaluated)."""
    candidates = [(r.archive.best(), r) for r in rollouts if r.task_name == task_name and r.archive.entries]
    if not candidates:
        return None
    entry, rollout = max(candidates, key=lambda pair: (pair[0].val_score, -candidates.index(pair)))
    source = rollout.archive.sources[entry.workflow_hash]
    return BestWorkflow(task_name, rollout.rollout_id, entry.origin, source, entry.val_score, None,
                        f"best_workflow_{task_name}.py")


async def run_w4s_async(settings: RunSettings, policy: Policy, output_dir: str | pathlib.Path, *,
                        ledger: Ledger | None = None) -> RunResult:
    clock = phase_clock.PhaseClock()
    loop, task_settings = settings.w4s, settings.task
    full_plan = settings.rollout_plan()
    all_ids = [f"{name}-s{seed}" for name, seed in full_plan]
    # Several hosts (the in-process sampler on multi-controller JAX): this host's share, its own files.
    plan = host_share(full_plan, policy.process_index, policy.process_count)
    rollout_ids = host_share(all_ids, policy.process_index, policy.process_count)
    run_name = pathlib.Path(output_dir).name
    output_dir = host_output_dir(pathlib.Path(output_dir), policy.process_index, policy.process_count)
    output_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(output_dir / "journal.jsonl")
    check_resume_fingerprint(journal, settings)
    own_ledger = ledger is None
    if own_ledger:
        ledger = command_ledger(settings.executor, output_dir)
    executor = ExecutorClient.from_settings(settings.executor, output_dir, ledger=ledger, clock=clock)
    usage_before = executor.usage()
    tasks = {name: task_registry.get_task(name, task_settings.seed) for name, _ in full_plan}
    val_examples = {name: tasks[name].load(task_settings.val_split, task_settings.data_dir, task_settings.val_limit)
                    for name in dict.fromkeys(name for name, _ in plan)}
    batcher = GenerationBatcher(policy, journal, temperature=settings.sampling.temperature,
                                max_new_tokens=settings.sampling.max_new_tokens, lockstep=loop.lockstep_generation,
                                window_s=loop.batch_window_s, clock=clock)
    progress = ProgressView(rollout_ids, loop.max_iterations, lambda: executor.usage()["spent_usd"],
                            enabled=loop.progress)
    try:
        async with SandboxEvaluator(settings.sandbox, executor) as evaluator:
            evaluations = JournaledEvaluations(evaluator, journal,
                                               loop.max_concurrent_evaluations, clock=clock)
            rollouts = [
                Rollout(rollout_id=rollout_id, task_name=name, task=tasks[name], seed=seed,
                        val_examples=val_examples[name],
                        seed_workflows=seed_workflows(tasks[name], loop.seed_workflows),
                        settings=loop, batcher=batcher, evaluations=evaluations, journal=journal,
                        archive=Archive(output_dir / "archive" / rollout_id), on_turn=progress.on_turn)
                for rollout_id, (name, seed) in zip(rollout_ids, plan)
            ]
            # All rollouts at once, each a participant of the batcher; any error but the budget cancels the rest.
            await batcher.gather([_run_rollout(rollout) for rollout in rollouts])
            await policy.finish()
            stopped = first_reason(next((r.stopped_reason for r in rollouts if r.stopped_reason), ""))
            local = [(all_ids.index(choice.rollout_id), choice) for name in tasks
                     if (choice := _choose(name, rollouts)) is not None]

            async def score_on_test(choice: BestWorkflow) -> BestWorkflow:
                return await _score_on_test(choice, tasks[choice.task], task_settings, evaluations)

            best = await choose_across_hosts(local, policy.process_index,
                                             score_on_test if loop.test_eval and not stopped else None)
    finally:
        progress.close()
        await policy.aclose()  # an API meta-agent's connections, also when a rollout raised
        await executor.aclose()
        journal.close()
        if own_ledger:
            ledger.close()
        clock.save(output_dir, phase_clock.COLLECTION_PHASES, phase_clock.COLLECTION_OVERLAPS)
    for choice in best:
        (output_dir / choice.path).write_text(choice.source, encoding="utf-8")
    crash_points.reached("trajectories")
    trajectories_path = output_dir / "trajectories.jsonl"
    count = write_trajectories(trajectories_path, gather_records(
        [record for rollout in rollouts for record in trajectory_records(run_name, rollout)]))
    plot_curves(rollouts, output_dir / "validation_curve.png")
    usage = _usage_since(usage_before, executor.usage())
    meta = _meta_agent_summary(policy, batcher, usage)
    report_path = output_dir / "report.md"
    evaluation_counts = {"run": evaluations.paid, "replayed": evaluations.replayed}
    write_report(report_path, run_name=run_name, rollouts=rollouts, best=best, executor_usage=usage,
                 meta_agent=meta, evaluations=evaluation_counts, plot_file="validation_curve.png",
                 stopped_reason=stopped)
    summary = {"run": run_name, "stopped_reason": stopped, "trajectories": count, "meta_agent": meta,
               "evaluations": evaluation_counts,
               "executor_spent_usd": usage.get("spent_usd", 0.0),
               "command_spent_usd": usage["command_spent_usd"],
               "best": {b.task: {"rollout": b.rollout_id, "origin": b.origin, "val_score": b.val_score,
                                 "test_score": b.test_score, "file": b.path} for b in best}}
    crash_points.reached("result")
    (output_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return RunResult(output_dir, trajectories_path, report_path, output_dir / "journal.jsonl",
                     {b.task: b for b in best}, count, stopped)


def _usage_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """This collection's share of a ledger that the command's other collections share: counters and
    dollars since `before`; `command_spent_usd` is the command's total (earlier processes included)."""
    def minus(now: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
        return {name: value - then.get(name, 0) if isinstance(value, int | float) and not isinstance(value, bool)
                else value for name, value in now.items()}

    old_entries = before["by_model_role"]
    usage = minus({name: value for name, value in after.items() if name not in ("budget_usd", "reserved_usd")},
                  before)
    usage.update(budget_usd=after["budget_usd"], reserved_usd=after["reserved_usd"],
                 command_spent_usd=after["spent_usd"], spent_before_usd=after.get("spent_before_usd", 0.0),
                 by_model_role={key: minus(entry, old_entries.get(key, {}))
                                for key, entry in after["by_model_role"].items()})
    return usage


def _meta_agent_summary(policy: Policy, batcher: GenerationBatcher, usage: dict[str, Any]) -> dict[str, Any]:
    """Generations, batches, tokens, and dollars: an API meta-agent's from the run's ledger (role
    "meta-agent"); the in-process sampler's are none."""
    dollars = sum(entry["dollars"] for entry in usage["by_model_role"].values() if entry["role"] == META_ROLE)
    return {"generations": sum(batcher.batch_sizes), "batches": len(batcher.batch_sizes),
            "largest_batch": max(batcher.batch_sizes, default=0), "replayed": len(batcher.replayed),
            **policy.usage.to_json(), "dollars": dollars}


async def _score_on_test(choice: BestWorkflow, task: Any, task_settings: TaskSettings,
                         evaluations: JournaledEvaluations) -> BestWorkflow:
    """The one test evaluation of the chosen workflow; its result goes to the report only."""
    examples = task.load("test", task_settings.data_dir, task_settings.test_limit)
    outcome = await evaluations.run(choice.task, task, "test", choice.source, examples)
    return dataclasses.replace(choice, test_score=outcome.score)
