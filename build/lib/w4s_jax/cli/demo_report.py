"""The demo's top-level report: one page linking what each stage of the pipeline left behind.

The W4S run writes its own report (best workflow, validation curve, test score apart, costs); the
trainer writes metrics.jsonl and orbax checkpoints. This page adds the training-loss plot, says
plainly which part stood in for the strong executor, and what that executor did: calls and tokens
(from the executor cache, where every answered call is stored), per-sample errors by kind (from the
journal's evaluations), and a local server's peak memory (`executor_server.json`); and where the
time went, phase by phase (`phase_times.json` of the collection and of the training).
"""

from __future__ import annotations

import collections
import contextlib
import json
import pathlib
import re
import sqlite3

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ml_collections

from w4s_jax import phase_clock
from w4s_jax.cli.local_executor import SERVER_INFO
from w4s_jax.rlao.metrics import read_metrics

EVALUATION_KINDS = ("evaluation", "test_evaluation")  # journal kinds of validation and test evaluations
HTTP_STATUS = re.compile(r"last status: (HTTP \d{3}|timeout|connection \w+|malformed reply)")


def executor_calls(cache_path: pathlib.Path) -> dict[str, int]:
    """Answered executor calls from the cache (one row per response; the responses of one call share
    their request key and time): calls, responses, prompt/completion tokens, empty replies."""
    totals = {"calls": 0, "responses": 0, "prompt_tokens": 0, "completion_tokens": 0, "empty_replies": 0}
    if not cache_path.is_file():
        return totals
    with contextlib.closing(sqlite3.connect(f"file:{cache_path}?mode=ro", uri=True)) as db:
        calls = db.execute("SELECT COUNT(*), SUM(n), SUM(prompt_tokens), SUM(completion_tokens), SUM(empty) FROM "
                           "(SELECT COUNT(*) AS n, MAX(prompt_tokens) AS prompt_tokens, MAX(completion_tokens) AS "
                           "completion_tokens, SUM(text = '') AS empty FROM responses GROUP BY request_key, created)"
                           ).fetchone()
    for name, value in zip(totals, calls):
        totals[name] = int(value or 0)
    return totals


def error_kind(error: str) -> str:
    """'NameError', 'TimeoutError', ...; an executor call that failed for good also names its last status
    (e.g. 'ExecutorError (HTTP 422)': the local server found no valid JSON to return)."""
    kind = error.split(":", 1)[0].strip() or "error"
    status = HTTP_STATUS.search(error)
    return f"{kind} ({status.group(1)})" if status else kind


def sample_errors(journal_path: pathlib.Path) -> tuple[int, collections.Counter]:
    """(samples evaluated, Counter of error kinds) over the journal's validation and test evaluations."""
    samples, kinds = 0, collections.Counter()
    if not journal_path.is_file():
        return samples, kinds
    for line in journal_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("kind") in EVALUATION_KINDS:
            for case in record["outcome"]["cases"]:
                samples += 1
                if case.get("error"):
                    kinds[error_kind(case["error"])] += 1
    return samples, kinds


def executor_section(config: ml_collections.ConfigDict, output_dir: pathlib.Path, collect_dir: pathlib.Path) -> list[str]:
    """The report's lines on what the executor did."""
    cache = pathlib.Path(config.executor.cache_path or collect_dir / "executor_cache.sqlite")
    calls = executor_calls(cache)
    samples, kinds = sample_errors(collect_dir / "journal.jsonl")
    lines = [
        "## Executor", "",
        f"- `{config.executor.model}`: {calls['calls']} answered calls, {calls['responses']} responses "
        f"({calls['empty_replies']} empty), {calls['prompt_tokens']} prompt and {calls['completion_tokens']} "
        "completion tokens (the W4S report has format errors and failed calls per model).",
        f"- Workflow samples evaluated (validation and test): {samples}; ended in an error: {sum(kinds.values())}.",
    ]
    if kinds:
        lines += ["", "| error kind | samples |", "|---|---|"]
        lines += [f"| {kind} | {count} |" for kind, count in kinds.most_common()]
    info_path = output_dir / SERVER_INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        peak = "unknown" if info["peak_rss_mib"] is None else f"{info['peak_rss_mib']:.0f} MiB"
        up = "still up at the end" if info["up_at_end"] else f"NOT up at the end (exit status {info['exit_status_before_stop']})"
        lines += ["", f"- Local server: peak memory (VmHWM) {peak}; ready after {info['ready_s']:.0f} s; {up}; "
                  f"log `{info['log']}`."]
    return [*lines, ""]


def _phase_row(stage: str, phase: str, seconds: float, wall_s: float) -> str:
    share = f"{100 * seconds / wall_s:.0f}%" if wall_s > 0 else "-"
    return f"| {stage} | {phase} | {seconds:.1f} | {share} |"


def time_section(collect_dir: pathlib.Path, train_dir: pathlib.Path) -> list[str]:
    """The report's table of where the wall-clock time went: each phase's busy time (the union of
    its intervals, so concurrent rollouts count once) and how much generation and evaluation
    overlapped; each stage's rows add up to its wall time."""
    collection, training = phase_clock.read_totals(collect_dir), phase_clock.read_totals(train_dir)
    if collection is None and training is None:
        return []
    lines = ["## Time", "",
             "Wall-clock seconds per phase (`phase_times.json` in the collection's and the training's "
             "folder). A phase's time counts each second once however many rollouts were in it; executor "
             "wait is part of sandbox evaluation; generation + evaluation - overlap + the rest = the stage's "
             "wall time.", "",
             "| stage | phase | seconds | share of the stage |", "|---|---|---|---|"]
    if collection is not None:
        wall, busy = collection["wall_s"], collection["busy_s"]
        generation, evaluation = busy.get(phase_clock.GENERATION, 0.0), busy.get(phase_clock.EVALUATION, 0.0)
        overlap = collection["overlap_s"].get(phase_clock.overlap_name(phase_clock.GENERATION,
                                                                       phase_clock.EVALUATION), 0.0)
        lines += [_phase_row("W4S collection", "wall clock", wall, wall),
                  _phase_row("W4S collection", "meta-agent generation", generation, wall),
                  _phase_row("W4S collection", "sandbox evaluation", evaluation, wall),
                  _phase_row("W4S collection", "executor wait (within evaluation)",
                             busy.get(phase_clock.EXECUTOR_WAIT, 0.0), wall),
                  _phase_row("W4S collection", "generation and evaluation overlapped", overlap, wall),
                  _phase_row("W4S collection", "the rest (setup, sandbox start, bookkeeping)",
                             max(0.0, wall - generation - evaluation + overlap), wall)]
    if training is not None:
        wall, busy = training["wall_s"], training["busy_s"]
        steps, saves = busy.get(phase_clock.TRAINING, 0.0), busy.get(phase_clock.CHECKPOINT, 0.0)
        lines += [_phase_row("RLAO training", "wall clock", wall, wall),
                  _phase_row("RLAO training", "train steps (compilation included)", steps, wall),
                  _phase_row("RLAO training", "checkpoint saves", saves, wall),
                  _phase_row("RLAO training", "the rest (data preparation, setup)",
                             max(0.0, wall - steps - saves), wall)]
    attempts = max(totals["attempts"] for totals in (collection, training) if totals is not None)
    if attempts > 1:
        lines += ["", f"Summed over the {attempts} processes that ran a stage (a resumed run adds to the "
                  "earlier ones; one killed outright is missing)."]
    return [*lines, ""]


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


def write_demo_report(config: ml_collections.ConfigDict, output_dir: pathlib.Path, executor_note: str) -> pathlib.Path:
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
        executor_note or f"Executor: `{config.executor.model}` at `{config.executor.base_url}`.",
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
    lines += executor_section(config, output_dir, collect_dir)
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
    lines += time_section(collect_dir, train_dir)
    report = output_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
