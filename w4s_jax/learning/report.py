"""The learning experiment's outputs: `learning.json` (every number), `learning.png` (the curves),
`learning.md` (the table) and `samples.md` (what the meta-agent wrote in each collection)."""

from __future__ import annotations

import json
import pathlib

from w4s_jax.learning.experiment import ARMS, STARTS
from w4s_jax.learning.measures import read_candidates

PLOTTED = (
    ("valid_rate", "valid-workflow rate"),
    ("check_pass_rate", "check-pass rate"),
    ("mean_val_score", "mean validation score (0 if no workflow ran)"),
    ("best_val_score", "best validation score"),
    ("mean_reward", "mean reward"),
    ("samples_at_temperature_rate", "share sampling several answers at T > 0"),
)
COLORS = {"rlao": "tab:red", "sft": "tab:blue", "none": "tab:gray"}
STYLES = {"warm": "-", "base": "--"}
SAMPLE_CHARS = 1600


def write_outputs(output_dir: pathlib.Path, payload: dict) -> dict[str, pathlib.Path]:
    paths = {name: output_dir / name for name in ("learning.json", "learning.png", "learning.md", "samples.md")}
    paths["learning.json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    plot_curves(payload["results"], paths["learning.png"])
    paths["learning.md"].write_text(table_markdown(payload["results"]), encoding="utf-8")
    paths["samples.md"].write_text(samples_markdown(payload["results"]), encoding="utf-8")
    return paths


def plot_curves(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for axis, (metric, title) in zip(axes.flat, PLOTTED):
        for start in STARTS:
            for arm in ARMS:
                rounds = results[start][arm]
                xs = [entry["round"] + {"rlao": -0.06, "sft": 0.0, "none": 0.06}[arm] for entry in rounds]
                ys = [_nan(entry[metric]) for entry in rounds]
                errors = [_nan(entry.get(f"{metric}_se"), 0.0) for entry in rounds]
                axis.errorbar(xs, ys, yerr=errors, color=COLORS[arm], linestyle=STYLES[start], marker="o",
                              markersize=3, capsize=2, label=f"{arm} ({start} start)")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("round (collections after that many trainings)")
        axis.set_xticks(range(len(results[STARTS[0]][ARMS[0]])))
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    figure.suptitle("Learning curves of the meta-agent's own candidates (error bars: standard error over rollouts)",
                    fontsize=11)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _nan(value: float | None, default: float = float("nan")) -> float:
    return default if value is None else float(value)


def _cell(entry: dict, metric: str, percent: bool = False) -> str:
    value, error = entry[metric], entry.get(f"{metric}_se")
    if value is None:
        return "-"
    scale = 100 if percent else 1
    text = f"{scale * value:.0f}%" if percent else f"{value:.3f}"
    if error is not None:
        text += f" ± {scale * error:.0f}" if percent else f" ± {error:.3f}"
    return text


def table_markdown(results: dict) -> str:
    lines = [
        "| start | arm | round | candidates | valid | check passed | mean val. score | mean val. score (ran) "
        "| best | mean reward | beat the best seed | several answers at T > 0 | trained on | collection |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for start in STARTS:
        for arm in ARMS:
            for entry in results[start][arm]:
                trained = entry["trained"]
                if trained is None:
                    trained_text = "-"
                elif trained.get("skipped"):
                    trained_text = f"nothing ({trained['skipped']})"
                else:
                    trained_text = f"{trained['examples']} kept, {trained['steps']} steps"
                collection = "same as " + _short(entry["reused_from"]) if entry["reused_from"] else "new"
                lines.append(
                    f"| {start} | {arm} | {entry['round']} | {entry['candidates']} | {_cell(entry, 'valid_rate', True)} "
                    f"| {_cell(entry, 'check_pass_rate', True)} | {_cell(entry, 'mean_val_score')} "
                    f"| {_cell(entry, 'mean_val_score_passed')} | {_cell(entry, 'best_val_score')} "
                    f"| {_cell(entry, 'mean_reward')} | {_cell(entry, 'beat_best_rate', True)} "
                    f"| {_cell(entry, 'samples_at_temperature_rate', True)} | {trained_text} | {collection} |")
    return "\n".join(lines) + "\n"


def _short(directory: str) -> str:
    """`.../warm/round_0/collect` -> `warm/round_0`."""
    parts = pathlib.Path(directory).parts
    return "/".join(parts[-3:-1]) if parts[-1] == "collect" and parts[-3] in STARTS else "/".join(parts[-4:-1])


def samples_markdown(results: dict) -> str:
    """For every collection run: its best reply that ran and one reply that did not, as written."""
    seen = list(dict.fromkeys(entry["collection"] for start in STARTS for arm in ARMS
                              for entry in results[start][arm]))
    parts = ["# What the meta-agent wrote\n\nPer collection: the candidate with the best validation score among "
             "those that ran, and the first candidate that did not (invalid reply or failed check), cut at "
             f"{SAMPLE_CHARS} characters.\n"]
    for directory in seen:
        records = read_candidates(pathlib.Path(directory) / "trajectories.jsonl")
        ran = [r for r in records if r["valid_action"] and not r.get("check_failed", False)]
        failed = [r for r in records if not (r["valid_action"] and not r.get("check_failed", False))]
        parts.append(f"## {_short(directory)}\n")
        if ran:
            best = max(ran, key=lambda r: r["val_score"])
            parts.append(f"Best that ran ({best['rollout']}, candidate {best['candidate']}, validation score "
                         f"{best['val_score']:.3f}, reward {best['reward']}):\n\n{_quoted(best['reply'])}\n")
        if failed:
            first = failed[0]
            parts.append(f"First that did not run ({first['rollout']}, candidate {first['candidate']}: "
                         f"{first.get('note', '')[:200]}):\n\n{_quoted(first['reply'])}\n")
    return "\n".join(parts)


def _quoted(reply: str) -> str:
    text = reply if len(reply) <= SAMPLE_CHARS else reply[:SAMPLE_CHARS] + " ...[cut]"
    return "\n".join("    " + line for line in text.splitlines())
