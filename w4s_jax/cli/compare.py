"""`w4s-jax compare`: the built-in baselines and given workflows on one task split, each row's accuracy
beside its executor cost, as compare.md, compare.csv and compare.png (accuracy against cost).

Rows: cot, cot_sc (5 samples), self_refine, then code_generation (program of thought) for a numeric
task or code_writer (code with public tests) for a code task, then every workflow in `workflows`
(files, built-in names, or W4S run directories, whose best_workflow_<task>.py is the chosen workflow).
Each row is `w4s-jax eval`'s evaluation (w4s/scoring.py evaluate_workflow), all in one sandbox, each
with an executor client whose SQLite cache is its own file in output_dir/compare_cache (one file per
workflow: with one shared file a row's first call, identical to another row's, would be served from
the cache and missing from its cost). A rerun sends no request; its cost columns then come from
compare_costs.json, where each row's cost is recorded by the last run that paid for it, so a rerun
reproduces the table at no cost; "requests sent" says what this run sent.

The executor is chosen as `demo.executor` chooses it (cli/local_executor.py); compare.md says which.
Accuracy carries a 95% Wilson interval over the examples (the mean score counted as successes).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import logging
import math
import pathlib
import time

import ml_collections

from w4s_jax.cli.eval import load_examples, load_workflow, search_backend
from w4s_jax.cli.local_executor import executor_kind, local_executor
from w4s_jax.config import config_checks
from w4s_jax.config.typed import section_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s.atomic import atomic_write

DOC = ("Compare the built-in baselines (cot, cot_sc, self_refine, and program-of-thought or code-with-tests) and "
       "given workflows on one task split: accuracy with a 95% interval beside executor calls, tokens, dollars "
       "and seconds, as compare.md, compare.csv and compare.png; reruns are served from the executor cache.")
DEFAULT_CONFIG = "compare.py"
KINDS = ("simulated", "stand_in", "external")
LOCAL_MODELS = {"simulated": "simulated-executor", "stand_in": "stand-in-executor"}
COST_LEDGER = "compare_costs.json"
CACHE_DIR = "compare_cache"
Z_95 = 1.959963984540054
COLUMNS = ("workflow", "accuracy", "ci_low", "ci_high", "n", "errors", "executor_calls", "prompt_tokens",
           "completion_tokens", "dollars", "seconds", "requests_sent", "cost_from")


@dataclasses.dataclass
class Row:
    """One workflow's line of the table."""

    workflow: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    errors: int
    executor_calls: int
    prompt_tokens: int
    completion_tokens: int
    dollars: float
    seconds: float
    requests_sent: int
    cost_from: str


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n (sound near 0 and 1, unlike p +- z*se)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # p inside despite rounding


def baseline_names(task) -> list[str]:
    """The built-in baselines that fit the task (module doc)."""
    from w4s_jax.tasks.arithmetic_tasks import NumericTask

    names = ["cot", "cot_sc", "self_refine"]
    if task.is_code:
        names.append("code_writer")
    elif isinstance(task, NumericTask):
        names.append("code_generation")
    return names


def workflow_sources(config: ml_collections.ConfigDict, task) -> list[tuple[str, str]]:
    """(row name, source) of every row, in table order; a ConfigError names a spec that is none."""
    specs = baseline_names(task) if config.baselines else []
    specs += [spec.strip() for spec in str(config.workflows).split(",") if spec.strip()]
    if not specs:
        raise ConfigError("workflows: nothing to compare; keep baselines=True or name workflow files")
    rows, seen = [], set()
    for spec in specs:
        path = pathlib.Path(spec)
        if path.is_dir():
            chosen = path / f"best_workflow_{config.task}.py"
            if not chosen.is_file():
                raise ConfigError(f"workflows: run directory {spec} has no {chosen.name} (the workflow a W4S run "
                                  f"chose for {config.task})")
            name, source = f"{path.name}/{chosen.stem}", load_workflow(str(chosen))[1]
        else:
            try:
                name, source = load_workflow(spec)
            except ConfigError as error:  # eval's field is `workflow`; here it is `workflows`
                raise ConfigError(f"workflows: {str(error).removeprefix('workflow: ')}") from None
        if name in seen:
            raise ConfigError(f"workflows: {spec!r} names the row {name!r} twice")
        seen.add(name)
        rows.append((name, source))
    return rows


def executor_note(config: ml_collections.ConfigDict, kind: str) -> str:
    """What answered the calls, in one sentence for compare.md."""
    if kind == "simulated":
        return ("the SIMULATED executor (w4s_jax/executor/simulated.py), a documented model of an LLM executor, "
                "not a language model: rows compare strategies under that model, not what a real LLM scores; "
                "dollars at nominal GPT-4o-mini prices")
    if kind == "stand_in":
        return ("the scripted stand-in executor (w4s_jax/executor/stand_in_endpoint.py), not a language model: it "
                f"knows the gold answers and replies right with probability {config.demo.stand_in_accuracy}; "
                "dollars at nominal GPT-4o-mini prices")
    return f"the external executor {config.executor.model} at {config.executor.base_url}"


def executor_shim(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The sections local_executor reads, for this comparison's task and split: the local executors
    learn the gold replies of exactly the questions compared (all of the split when a subset filters it)."""
    limit = 0 if str(config.subset).strip() else int(config.limit)
    on_test = config.split == "test"
    return ml_collections.ConfigDict({
        "demo": config.demo.to_dict(),
        "executor": config.executor.to_dict(),
        "task": {"name": str(config.task), "data_dir": str(config.data_dir), "seed": int(config.seed),
                 "val_limit": 1 if on_test and limit else (0 if on_test else limit), "test_limit": limit},
        "w4s": {"test_eval": on_test},
        "sampling": {"seed": int(config.seed)},  # the simulated executor's draws
    })


def cost_key(config: ml_collections.ConfigDict, workflow_hash: str) -> str:
    """What a row's recorded cost depends on: the workflow, the examples and the executor."""
    return json.dumps([workflow_hash, str(config.task), str(config.subset), str(config.split), int(config.limit),
                       int(config.seed), str(config.data_dir), str(config.executor.model), executor_kind(config)])


def row_executor_settings(config: ml_collections.ConfigDict, workflow_hash: str, budget_usd: float):
    """The executor settings for one row: its own cache file under output_dir/compare_cache (unless
    executor.cache_path names one), so no row is served replies another row paid for and each row's
    cost is its own; the run's budget less what earlier rows spent."""
    executor = section_settings(config, "executor")
    cache_path = executor.cache_path or str(pathlib.Path(config.output_dir) / CACHE_DIR / f"{workflow_hash}.sqlite")
    return dataclasses.replace(executor, cache_path=cache_path, budget_usd=budget_usd)


async def compare_rows(config: ml_collections.ConfigDict, task, examples, workflows: list[tuple[str, str]],
                       recorded: dict) -> list[Row]:
    """Evaluates every workflow in one sandbox, each with its own cached executor client (module doc):
    the rows run one after another, and the sandbox's handler answers with the running row's client."""
    from w4s_jax.executor import ExecutorClient
    from w4s_jax.sandbox import Sandbox, workflow_hash
    from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler

    rows, budget = [], float(config.executor.budget_usd)
    running = {}  # "handler": the running row's executor handler

    async def handle(method: str, kwargs: dict, scope: str) -> object:
        return await running["handler"](method, kwargs, scope)

    async with Sandbox(section_settings(config, "sandbox"), handle) as sandbox:
        for name, source in workflows:
            executor = ExecutorClient.from_settings(row_executor_settings(config, workflow_hash(source), budget),
                                                    config.output_dir)
            running["handler"] = executor_handler(executor, search_backend(config))
            started = time.monotonic()
            try:
                report = await evaluate_workflow(source, task, examples, sandbox, executor,
                                                 hidden_test_timeout_s=float(config.hidden_test_timeout_s))
            finally:
                await executor.aclose()
            usage = executor.usage()
            budget -= float(usage["spent_usd"])
            per_model = usage["by_model_role"].values()
            paid = {"prompt_tokens": sum(int(u["prompt_tokens"]) for u in per_model),
                    "completion_tokens": sum(int(u["completion_tokens"]) for u in per_model),
                    "dollars": sum(float(u["dollars"]) for u in per_model),
                    "seconds": round(time.monotonic() - started, 3)}
            sent, key, cost_from = int(usage["calls"]), cost_key(config, report.workflow_hash), "this run"
            if sent:
                recorded[key] = paid
            elif key in recorded:
                paid, cost_from = recorded[key], "recorded run (all cached now)"
            else:
                cost_from = "cache (no recorded run)"
            n = len(report.samples)
            low, high = wilson_interval(report.score * n, n)
            rows.append(Row(name, report.score, low, high, n, report.errors,
                            int(report.usage["sandbox"]["executor_calls"]), paid["prompt_tokens"],
                            paid["completion_tokens"], paid["dollars"], paid["seconds"], sent, cost_from))
            print(f"w4s-jax compare: {name}: accuracy {report.score:.3f} [{low:.3f}, {high:.3f}] on {n}, "
                  f"{sent} requests sent", flush=True)
    return rows


def markdown(config: ml_collections.ConfigDict, rows: list[Row], note: str) -> str:
    subset = f" (subset: {config.subset})" if str(config.subset).strip() else ""
    lines = [f"# w4s-jax compare: {config.task} / {config.split}{subset}, {rows[0].n} examples", "",
             f"Executor: {note}.", "",
             "| workflow | accuracy | 95% CI | n | errors | executor calls | prompt tokens | completion tokens "
             "| dollars | seconds | requests sent | cost from |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.workflow} | {r.accuracy:.3f} | [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.n} | {r.errors} "
                     f"| {r.executor_calls} | {r.prompt_tokens} | {r.completion_tokens} | {r.dollars:.6f} "
                     f"| {r.seconds:.1f} | {r.requests_sent} | {r.cost_from} |")
    lines += ["", "Accuracy: mean score over the examples; 95% CI: Wilson score interval. Executor calls: the "
              "workflow's agent LLM calls (cached or not). Tokens, dollars and seconds: what the executor cost "
              "the run that paid for the row (a rerun served from the cache shows that run's figures); "
              "requests sent: what this run sent.", "", "![accuracy against executor cost](compare.png)", ""]
    return "\n".join(lines)


def plot(rows: list[Row], path: pathlib.Path) -> None:
    """Accuracy (with its interval) against dollars, or total tokens where nothing is priced."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    priced = any(r.dollars > 0 for r in rows)
    xs = [r.dollars if priced else r.prompt_tokens + r.completion_tokens for r in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    for x, r in zip(xs, rows):
        axes.errorbar([x], [r.accuracy], yerr=[[r.accuracy - r.ci_low], [r.ci_high - r.accuracy]], fmt="o", capsize=3)
        axes.annotate(r.workflow, (x, r.accuracy), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xlabel("executor dollars" if priced else "executor tokens")
    axes.set_ylabel("accuracy (95% Wilson interval)")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(config: ml_collections.ConfigDict, rows: list[Row], note: str) -> list[pathlib.Path]:
    output_dir = pathlib.Path(config.output_dir)
    paths = [output_dir / "compare.md", output_dir / "compare.csv", output_dir / "compare.png"]
    with atomic_write(paths[0]) as handle:
        handle.write(markdown(config, rows, note))
    with atomic_write(paths[1]) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([getattr(r, c) for c in COLUMNS] for r in rows)
    plot(rows, paths[2])
    return paths


def main(config: ml_collections.ConfigDict) -> None:
    config_checks.validate(config, sections=("sandbox", "output_dir", "demo"))
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    kind = executor_kind(config)
    if kind not in KINDS:
        raise ConfigError(f"demo.executor: compare runs against {', '.join(KINDS)}, got {kind!r}")
    if kind in LOCAL_MODELS:
        config.executor.model = LOCAL_MODELS[kind]
    task, examples = load_examples(config)
    workflows = workflow_sources(config, task)
    output_dir = pathlib.Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ledger = output_dir / COST_LEDGER
    recorded = json.loads(ledger.read_text(encoding="utf-8")) if ledger.is_file() else {}
    shim = executor_shim(config)
    with local_executor(shim, output_dir) as url:
        if url:
            config.executor.base_url, config.executor.model = url, shim.executor.model
        config_checks.validate(config, sections=("executor",))
        rows = asyncio.run(compare_rows(config, task, examples, workflows, recorded))
    with atomic_write(ledger) as handle:
        handle.write(json.dumps(recorded, indent=1))
    paths = write_outputs(config, rows, executor_note(config, kind))
    print(f"w4s-jax compare: {len(rows)} rows on {config.task}/{config.split}; wrote {', '.join(map(str, paths))}")
