"""The demo's top-level report: one page linking what each stage of the pipeline left behind.

The W4S run writes its own report (best workflow, validation curve, test score apart, costs); the
trainer writes metrics.jsonl and orbax checkpoints. This page adds the training-loss plot and says
plainly which part stood in for the strong executor.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ml_collections

from w4s_jax.rlao.metrics import read_metrics


def plot_training_loss(records: list[dict], path: pathlib.Path) -> None:
    steps = [record["step"] for record in records]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(steps, [record["loss"] for record in records], marker="o", label="weighted loss")
    axis.plot(steps, [record["nll"] for record in records], marker="s", label="plain NLL")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_title("RLAO update of the meta-agent")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_demo_report(config: ml_collections.ConfigDict, output_dir: pathlib.Path, stand_in_note: str) -> pathlib.Path:
    round_dir = output_dir / "round_0"
    collect_dir, train_dir = round_dir / "collect", round_dir / "train"
    result = json.loads((collect_dir / "result.json").read_text(encoding="utf-8"))
    records = read_metrics(train_dir / "metrics.jsonl")
    if records:
        plot_training_loss(records, output_dir / "training_loss.png")
    checkpoint_dir = pathlib.Path(config.checkpoint.dir or train_dir / "checkpoints")
    steps = sorted(int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()) if checkpoint_dir.is_dir() else []
    trajectories = collect_dir / "trajectories.jsonl"
    rows = [json.loads(line) for line in trajectories.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = [
        "# w4s-jax offline demo",
        "",
        f"Meta-agent: `{config.model.preset}` (JAX, in process) from `{pathlib.Path(config.model.path).name}`. "
        f"Task: `{config.task.name}` ({config.task.val_limit} validation questions for feedback and rewards; "
        f"{config.task.test_limit} test questions scored once at the end, reported apart).",
        "",
        stand_in_note or f"Executor: `{config.executor.model}` at `{config.executor.base_url}`.",
        "",
        "## W4S",
        "",
        f"- Trajectories: `{trajectories.relative_to(output_dir)}` ({len(rows)} candidates, "
        f"{sum(1 for r in rows if r['valid_action'])} valid actions; rewards "
        f"{sorted(round(r['reward'], 2) for r in rows)}).",
        f"- The W4S run's report: `{(collect_dir / 'report.md').relative_to(output_dir)}`.",
        "",
        "| task | chosen workflow | validation score | test score |",
        "|---|---|---|---|",
    ]
    for task, best in result["best"].items():
        test = "-" if best["test_score"] is None else f"{best['test_score']:.3f}"
        lines.append(f"| {task} | {best['origin']} (`{best['file']}`) | {best['val_score']:.3f} | {test} |")
    lines += ["", f"![validation curve]({(collect_dir / 'validation_curve.png').relative_to(output_dir)})", ""]
    lines += ["## RLAO", ""]
    if records:
        last = records[-1]
        lines += [
            f"- {len(records)} optimizer steps on the trajectories: loss {records[0]['loss']:.4f} -> {last['loss']:.4f}, "
            f"mean weight {last.get('mean_weight', float('nan')):.3f}, {int(last.get('target_tokens', 0))} target tokens in the last step.",
            f"- Metrics: `{(train_dir / 'metrics.jsonl').relative_to(output_dir)}` (and TensorBoard event files beside it).",
            "",
            "![training loss](training_loss.png)",
        ]
    lines += [
        f"- Orbax checkpoint(s) at steps {steps}: `{checkpoint_dir.relative_to(output_dir) if checkpoint_dir.is_relative_to(output_dir) else checkpoint_dir}`.",
        "",
    ]
    report = output_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
