"""The learning experiment's outputs: `learning.json` (every number), `learning.png` (held-out test
scores per arm and task beside the baselines), `learning.md` (the tables) and `samples.md` (what the
meta-agent wrote in each training collection)."""

from __future__ import annotations

import json
import pathlib

from w4s_jax.learning.experiment import ARMS
from w4s_jax.learning.measures import read_candidates
from w4s_jax.learning.stats import paired_difference, score_summary

COLORS = {"rlao": "tab:red", "sft": "tab:blue", "none": "tab:gray", "best_of_n": "tab:olive"}
CONTROLS = ("none", "best_of_n")
SAMPLE_CHARS = 1600


def per_problem(entries: dict[str, dict]) -> dict[int, dict[str, float]]:
    """seed -> problem id -> test score, from entries keyed by seed (runs that scored nothing are left out)."""
    return {int(seed): entry["test_cases"] for seed, entry in entries.items() if entry.get("test_cases")}


def summarize(payload: dict) -> dict:
    """Per task: each arm's and baseline's test score over seeds, and each trained arm's paired
    differences to the controls on the same problems."""
    summary: dict[str, dict] = {}
    for task, arms in payload["evaluation"].items():
        scores = {arm: per_problem(arms[arm]) for arm in ARMS if arm in arms}
        baselines = {name: per_problem(entries) for name, entries in payload["baselines"].get(task, {}).items()}
        summary[task] = {
            "arms": {arm: score_summary(s) for arm, s in scores.items() if s},
            "baselines": {name: score_summary(s) for name, s in baselines.items() if s},
            "differences": {f"{arm} - {control}": paired_difference(scores[arm], scores[control])
                            for arm in ("rlao", "sft", "none") for control in CONTROLS
                            if arm != control and scores.get(arm) and scores.get(control)},
        }
    return summary


def write_outputs(output_dir: pathlib.Path, payload: dict) -> dict[str, pathlib.Path]:
    payload = payload | {"summary": summarize(payload)}
    paths = {name: output_dir / name for name in ("learning.json", "learning.png", "learning.md", "samples.md")}
    paths["learning.json"].write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plot_scores(payload, paths["learning.png"])
    paths["learning.md"].write_text(tables_markdown(payload), encoding="utf-8")
    paths["samples.md"].write_text(samples_markdown(payload["training"]), encoding="utf-8")
    return paths


def plot_scores(payload: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(payload["summary"])
    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), constrained_layout=True, squeeze=False)
    for axis, task in zip(axes.flat, tasks):
        summary = payload["summary"][task]
        arms = [arm for arm in ARMS if arm in summary["arms"]]
        for x, arm in enumerate(arms):
            entry = summary["arms"][arm]
            low, high = entry["low"], entry["high"]
            error = [[entry["mean"] - low], [high - entry["mean"]]] if low is not None else None
            axis.bar(x, entry["mean"], color=COLORS[arm], alpha=0.8, yerr=error, capsize=4)
            for value in entry["per_seed"].values():
                axis.plot(x, value, "k.", markersize=5)
        for index, (name, entry) in enumerate(summary["baselines"].items()):
            axis.axhline(entry["mean"], color=f"C{index + 4}", linestyle="--", linewidth=1, label=f"{name} (baseline)")
        axis.set_xticks(range(len(arms)), arms)
        seen = next(t["seen"] for t in payload["tasks"] if t["name"] == task)
        axis.set_title(f"{task} ({'seen task, held-out problems' if seen else 'unseen task'})", fontsize=10)
        axis.set_ylabel("test score (bar: mean over seeds, 95% t-interval; dots: seeds)")
        scores = [e["mean"] for e in summary["arms"].values()] + [e["mean"] for e in summary["baselines"].values()]
        axis.set_ylim(max(0.0, min(scores) - 0.15), min(1.0, max(scores) + 0.1))
        axis.legend(fontsize=7, loc="lower right")
        axis.grid(alpha=0.3, axis="y")
    figure.suptitle("Held-out test scores of each arm's chosen workflow, and the fixed baselines", fontsize=11)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _interval(entry: dict) -> str:
    if entry["low"] is None:
        return f"{entry['mean']:.3f}"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _signed(entry: dict) -> str:
    if entry["low"] is None:
        return f"{entry['mean']:+.3f}"
    return (f"{entry['mean']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}] "
            f"(problems: [{entry['bootstrap_low']:+.3f}, {entry['bootstrap_high']:+.3f}])")


def tables_markdown(payload: dict) -> str:
    seeds = ", ".join(str(s) for s in payload["eval_seeds"])
    lines = [f"# Held-out test scores (seeds {seeds}; best-of-N: N = {payload['best_of_n']})", "",
             "Mean over seeds with a 95% t-interval over seeds; a paired difference is per seed on the same test "
             "problems with the same executor, its t-interval over seeds, then (problems: ...) the interval from "
             "resampling problems within each seed.", ""]
    for task, summary in payload["summary"].items():
        seen = next(t["seen"] for t in payload["tasks"] if t["name"] == task)
        lines += [f"## {task} ({'seen task, held-out problems' if seen else 'unseen task'})", "",
                  "| arm | test score | per seed | minus none | minus best-of-N | chosen workflows |", "|---|---|---|---|---|---|"]
        for arm, entry in summary["arms"].items():
            per_seed = ", ".join(f"{v:.3f}" for v in entry["per_seed"].values())
            diffs = [summary["differences"].get(f"{arm} - {control}") for control in CONTROLS]
            chosen = ", ".join(str(e["chosen"]) for e in payload["evaluation"][task][arm].values())
            lines.append(f"| {arm} | {_interval(entry)} | {per_seed} | "
                         + " | ".join("-" if d is None else _signed(d) for d in diffs) + f" | {chosen} |")
        lines += ["", "| baseline | test score | per seed | executor requests per seed (cache hits included) "
                  "| dollars paid per seed (this run) |", "|---|---|---|---|---|"]
        for name, entry in summary["baselines"].items():
            raw = payload["baselines"][task][name]
            calls = sum(e["requests"] for e in raw.values()) / len(raw)
            dollars = sum(e["executor_spent_usd"] for e in raw.values()) / len(raw)
            per_seed = ", ".join(f"{v:.3f}" for v in entry["per_seed"].values())
            lines.append(f"| {name} | {_interval(entry)} | {per_seed} | {calls:.0f} | {dollars:.4f} |")
        lines.append("")
    lines += strategy_lines(payload)
    return "\n".join(lines) + "\n"


def strategy_lines(payload: dict) -> list[str]:
    lines = ["## What the candidates do", "",
             "Shares of all candidates whose workflow ran and votes (several answers at T > 0), runs code, or "
             "verifies an answer; distinct workflows among those that ran.", "",
             "| where | arm | round / seed | candidates | valid | votes | runs code | verifies | distinct |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(where: str, arm: str, label: str, strategy: dict) -> str:
        return (f"| {where} | {arm} | {label} | {strategy['candidates']} | {strategy['valid_rate']:.0%} "
                f"| {strategy['votes_share']:.0%} | {strategy['runs_code_share']:.0%} "
                f"| {strategy['verifies_share']:.0%} | {strategy['distinct_workflows']} |")

    lines.append(row("warm-start teacher", "-", "-", payload["warm_start"]["teacher_strategy"]))
    for arm, rounds in payload["training"].items():
        for entry in rounds:
            lines.append(row("training", arm, f"round {entry['round']}", entry["strategy"]))
    for task, arms in payload["evaluation"].items():
        for arm, per_seed in arms.items():
            for seed, entry in per_seed.items():
                lines.append(row(f"eval {task}", arm, f"seed {seed}", entry["candidates"]))
    return lines


def samples_markdown(training: dict) -> str:
    """For every training collection: its best reply that ran and one reply that did not, as written."""
    seen = list(dict.fromkeys(entry["collection"] for rounds in training.values() for entry in rounds))
    parts = ["# What the meta-agent wrote\n\nPer training collection: the candidate with the best validation score "
             "among those that ran, and the first candidate that did not (invalid reply or failed check), cut at "
             f"{SAMPLE_CHARS} characters.\n"]
    for directory in seen:
        records = read_candidates(pathlib.Path(directory) / "trajectories.jsonl")
        ran = [r for r in records if r["valid_action"] and not r["check_failed"]]
        failed = [r for r in records if not (r["valid_action"] and not r["check_failed"])]
        parts.append(f"## {'/'.join(pathlib.Path(directory).parts[-4:-1])}\n")
        if ran:
            best = max(ran, key=lambda r: r["val_score"])
            parts.append(f"Best that ran ({best['rollout']}, candidate {best['candidate']}, validation score "
                         f"{best['val_score']:.3f}, reward {best['reward']}):\n\n{_quoted(best['reply'])}\n")
        if failed:
            first = failed[0]
            parts.append(f"First that did not run ({first['rollout']}, candidate {first['candidate']}: "
                         f"{first['note'][:200]}):\n\n{_quoted(first['reply'])}\n")
    return "\n".join(parts)


def _quoted(reply: str) -> str:
    text = reply if len(reply) <= SAMPLE_CHARS else reply[:SAMPLE_CHARS] + " ...[cut]"
    return "\n".join("    " + line for line in text.splitlines())
