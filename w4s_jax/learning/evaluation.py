"""Held-out evaluation of the learning experiment: what one optimization chose and how it scored on
test, and the fixed baselines scored on the same test problems with the same executor.

An optimization is an ordinary W4S run (`run_w4s` with `w4s.test_eval`): the final workflow is
chosen by validation score alone and scored once on the test split, whose cases reach only the run's
journal and report, never a prompt, reward or choice. This module reads that run's outputs.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Sequence
from typing import Any

from w4s_jax.executor.accounting import Ledger
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.learning.measures import read_candidates, strategy_flags, strategy_measures, test_case_scores
from w4s_jax.sandbox.settings import SandboxSettings

# Baselines per task type (the paper's and AFlow's fixed baselines; program-of-thought only where the
# answer is a number, code generation checked on the public tests only where the answer is code).
BASELINES = {"answer": ("cot", "cot_sc", "self_refine", "code_generation"),
             "code": ("cot", "cot_sc", "self_refine", "code_writer")}


def optimization_entry(run: Any, task_name: str) -> dict:
    """What an optimization run (a `RunResult`) chose, its validation and test scores, the test score of
    each problem, what its candidates did and what the executor cost."""
    best = run.best_workflows.get(task_name)
    summary = json.loads((run.output_dir / "result.json").read_text(encoding="utf-8"))
    records = read_candidates(run.trajectories_path) if run.trajectories_path.exists() else []
    return {
        "run": str(run.output_dir),
        "chosen": None if best is None else best.origin,
        "chosen_file": None if best is None else str(run.output_dir / best.path),
        "chosen_strategy": None if best is None else strategy_flags(best.source),
        "val_score": None if best is None else best.val_score,
        "test_score": None if best is None else best.test_score,
        "test_cases": test_case_scores(run.journal_path),
        "candidates": strategy_measures(records),
        "stopped_reason": run.stopped_reason,
        "executor_spent_usd": summary.get("executor_spent_usd", 0.0),
    }


def baseline_names(task: Any) -> tuple[str, ...]:
    return BASELINES["code" if task.is_code else "answer"]


def score_baselines(names: Sequence[str], task: Any, examples: Sequence[Any], sandbox: SandboxSettings,
                    executor: ExecutorSettings, output_dir: pathlib.Path, ledger: Ledger) -> dict[str, dict]:
    """Each built-in workflow scored on `examples`: score, per-problem scores, executor cost (spent from
    the command's `ledger`). Kept in `output_dir/scores.json`, so a resumed experiment reads them back
    instead of running every sample and hidden test again."""
    saved = output_dir / "scores.json"
    scored_on = {"workflows": list(names), "problems": [str(example.id) for example in examples]}
    if saved.exists():
        record = json.loads(saved.read_text(encoding="utf-8"))
        if record["scored_on"] == scored_on:
            return record["results"]
    results = asyncio.run(_score_baselines(names, task, examples, sandbox, executor, output_dir, ledger))
    partial = saved.with_suffix(".json.partial")
    partial.write_text(json.dumps({"scored_on": scored_on, "results": results}, allow_nan=False), encoding="utf-8")
    partial.replace(saved)  # complete or absent: a kill mid-write leaves no half file to read back
    return results


async def _score_baselines(names: Sequence[str], task: Any, examples: Sequence[Any], sandbox_settings: SandboxSettings,
                           executor_settings: ExecutorSettings, output_dir: pathlib.Path,
                           ledger: Ledger) -> dict[str, dict]:
    from w4s_jax.executor import ExecutorClient
    from w4s_jax.sandbox import Sandbox
    from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler
    from w4s_jax.workflows import builtin_source

    output_dir.mkdir(parents=True, exist_ok=True)
    executor = ExecutorClient.from_settings(executor_settings, output_dir, ledger=ledger)
    results = {}
    try:
        async with Sandbox(sandbox_settings, executor_handler(executor)) as sandbox:
            for name in names:
                before = executor.usage()
                report = await evaluate_workflow(builtin_source(name), task, examples, sandbox, executor)
                after = executor.usage()  # the command's ledger: this baseline's share is the difference
                results[name] = {
                    "test_score": report.score,
                    "test_cases": {sample["id"]: float(sample["correct"]) for sample in report.samples},
                    "errors": report.errors,
                    "calls": after["calls"] - before["calls"],  # paid in this run
                    "requests": (after["calls"] + after["cache_hits"]) - (before["calls"] + before["cache_hits"]),
                    "executor_spent_usd": after.get("spent_usd", 0.0) - before.get("spent_usd", 0.0),
                }
    finally:
        await executor.aclose()
    return results
