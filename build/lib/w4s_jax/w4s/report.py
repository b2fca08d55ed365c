"""The final report of a run: markdown (best workflow per task, test score apart, cost, error counts)
and a PNG of the validation curves (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

from w4s_jax.w4s.episode import Rollout


@dataclasses.dataclass(frozen=True)
class BestWorkflow:
    """The workflow chosen for one task on validation alone; its test score is measured afterwards."""

    task: str
    rollout_id: str
    origin: str
    source: str
    val_score: float
    test_score: float | None
    path: str


@dataclasses.dataclass(frozen=True)
class RunCounts:
    candidates: int
    invalid_actions: int
    check_failures: int
    repairs: int
    sample_errors: int


def run_counts(rollouts: Sequence[Rollout]) -> RunCounts:
    candidates = [c for r in rollouts for log in r.turns for c in log.candidates]
    return RunCounts(
        candidates=len(candidates),
        invalid_actions=sum(1 for c in candidates if not c.action.valid),
        check_failures=sum(1 for c in candidates if c.check_failed),
        repairs=sum(c.repairs for c in candidates),
        sample_errors=sum(c.outcome.error_count for c in candidates if c.evaluated),
    )


def validation_curve(rollout: Rollout) -> tuple[list[int], list[float], list[float | None]]:
    """Per turn: iteration, best validation score so far (archive), best candidate of the turn."""
    iterations, best_so_far, turn_best = [], [], []
    best = max((e.val_score for e in rollout.archive.entries if e.origin.startswith("seed:")), default=0.0)
    for log in rollout.turns:
        scores = [c.score for c in log.candidates if c.evaluated]
        if scores:
            best = max(best, max(scores))
        iterations.append(log.iteration + 1)
        best_so_far.append(best)
        turn_best.append(max(scores) if scores else None)
    return iterations, best_so_far, turn_best


def plot_curves(rollouts: Sequence[Rollout], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for rollout in rollouts:
        iterations, best, turn_best = validation_curve(rollout)
        seed_best = max((e.val_score for e in rollout.archive.entries if e.origin.startswith("seed:")), default=0.0)
        line, = axis.plot([0, *iterations], [seed_best, *best], marker="o", label=f"{rollout.rollout_id} best so far")
        points = [(i, s) for i, s in zip(iterations, turn_best) if s is not None]
        if points:
            axis.scatter(*zip(*points), marker="x", color=line.get_color(), label=f"{rollout.rollout_id} turn best")
    axis.set_xlabel("iteration (turn)")
    axis.set_ylabel("validation score")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title("W4S validation curve per task")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _cost_rows(usage: dict[str, Any]) -> list[str]:
    """API calls per (model, role): the executor's, and an API meta-agent's."""
    rows = ["| model | role | calls | cache hits | prompt tokens | completion tokens | dollars | format errors |",
            "|---|---|---|---|---|---|---|---|"]
    for entry in usage.get("by_model_role", {}).values():
        rows.append(f"| {entry['model']} | {entry['role']} | {entry['calls']} | {entry['cache_hits']} | "
                    f"{entry['prompt_tokens']} | {entry['completion_tokens']} | {entry['dollars']:.4f} | "
                    f"{entry['format_errors']} |")
    if len(rows) == 2:
        rows.append("| (no executor calls) | | | | | | | |")
    return rows


def write_report(path: pathlib.Path, *, run_name: str, rollouts: Sequence[Rollout], best: Sequence[BestWorkflow],
                 executor_usage: dict[str, Any], meta_agent: dict[str, Any], evaluations: dict[str, int],
                 plot_file: str, stopped_reason: str) -> None:
    counts = run_counts(rollouts)
    lines = [f"# W4S run `{run_name}`", ""]
    if stopped_reason:
        lines += [f"**Stopped early:** {stopped_reason}", ""]
    lines += ["## Validation (what the meta-agent saw)", "",
              "| rollout | turns | best validation | origin of best |", "|---|---|---|---|"]
    for rollout in rollouts:
        if rollout.archive.entries:
            entry = rollout.archive.best()
            lines.append(f"| {rollout.rollout_id} | {len(rollout.turns)} | {entry.val_score:.3f} | {entry.origin} |")
        else:
            lines.append(f"| {rollout.rollout_id} | {len(rollout.turns)} | - | nothing scored |")
    lines += ["", f"![validation curve]({plot_file})", ""]
    lines += ["## Test (scored once, after the choice on validation; never shown to the meta-agent)", "",
              "| task | chosen from | validation | test |", "|---|---|---|---|"]
    for choice in best:
        test = "not run" if choice.test_score is None else f"{choice.test_score:.3f}"
        lines.append(f"| {choice.task} | {choice.rollout_id} ({choice.origin}) | {choice.val_score:.3f} | {test} |")
    lines += ["", "## Cost", "", f"Executor spent ${executor_usage.get('spent_usd', 0.0):.4f} "
              f"of a ${executor_usage.get('budget_usd', 0.0):.2f} budget.", "", *_cost_rows(executor_usage), "",
              f"Meta-agent: {meta_agent.get('generations', 0)} generations in {meta_agent.get('batches', 0)} batches "
              f"(largest batch {meta_agent.get('largest_batch', 0)}), "
              f"{meta_agent.get('replayed', 0)} replayed from the journal; "
              f"{meta_agent.get('prompt_tokens', 0)} prompt and {meta_agent.get('completion_tokens', 0)} completion "
              f"tokens, ${meta_agent.get('dollars', 0.0):.4f} (an API meta-agent is priced from executor.prices "
              "and spends from the same budget; the in-process one costs no API dollars).",
              f"Workflow evaluations: {evaluations['run']} run, {evaluations['replayed']} replayed from the journal.",
              ""]
    lines += ["## Actions and errors", "",
              f"- candidates: {counts.candidates}",
              f"- invalid actions (no python block defining solver): {counts.invalid_actions}",
              f"- workflows still failing their check after the repairs: {counts.check_failures}",
              f"- repairs asked for: {counts.repairs}",
              f"- validation samples that ended in an error: {counts.sample_errors}", ""]
    for choice in best:
        lines += [f"## Best workflow for {choice.task} (validation {choice.val_score:.3f}, `{choice.path}`)", "",
                  "```python", choice.source.rstrip(), "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
