"""`w4s-jax eval`: evaluate one workflow (file or built-in baseline) on a task split, write a JSON report.

A workflow that fails on every sample still yields a report and exit status 0 (its errors are the
result); only a broken invocation (bad flag value, missing file, unknown task or split) exits 2 with a
message naming the field. Executor calls are cached under output_dir, so a rerun after a crash pays
for nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import time

import ml_collections

from w4s_jax.config import config_checks
from w4s_jax.config.typed import section_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s.atomic import atomic_write

DOC = ("Evaluate one workflow file (or a built-in baseline: cot, cot_sc, self_refine, code_generation, "
       "code_writer) on a task split with the configured executor; writes a JSON report with the score, "
       "per-sample answers and errors, and executor usage.")
DEFAULT_CONFIG = "eval.py"


def load_workflow(spec: str) -> tuple[str, str]:
    """(name, source) of a built-in baseline or a workflow file; ConfigError when neither."""
    from w4s_jax.workflows import BUILTIN_WORKFLOWS, builtin_source

    if spec in BUILTIN_WORKFLOWS:
        return spec, builtin_source(spec)
    path = pathlib.Path(spec)
    if not path.is_file():
        raise ConfigError(f"workflow: {spec!r} is neither a file nor a built-in workflow; pass a .py file "
                          f"defining solver(agent, task) or one of {', '.join(BUILTIN_WORKFLOWS)}")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"workflow: cannot read {path}: {error}") from None
    return path.stem, source


def load_examples(config: ml_collections.ConfigDict):
    """The task and its examples, with config errors that name the field."""
    from w4s_jax.tasks import DataError, MissingData, get_task

    try:
        task = get_task(str(config.task), int(config.seed), str(config.get("subset", "")))
    except KeyError as error:
        raise ConfigError(f"task: {error.args[0]}") from None
    except ValueError as error:
        raise ConfigError(f"subset: {error}") from None
    splits = task.splits_at(str(config.data_dir))
    if config.split not in splits:
        raise ConfigError(f"split: unknown split {config.split!r}; task {config.task!r} at {config.data_dir} "
                          f"has {', '.join(splits)}")
    if config.limit < 0:
        raise ConfigError(f"limit: must be >= 0, got {config.limit}; 0 evaluates the whole split")
    try:
        examples = task.load(str(config.split), str(config.data_dir), int(config.limit))
    except MissingData as error:
        raise ConfigError(f"data_dir: {error.render('--config.data_dir')}") from None
    except (DataError, FileNotFoundError) as error:
        raise ConfigError(f"data_dir: {error}") from None
    if not examples:
        raise ConfigError(f"data_dir: task {config.task!r} split {config.split!r} has no examples in "
                          f"{config.data_dir}")
    return task, examples


def report_path(config: ml_collections.ConfigDict, workflow_name: str) -> pathlib.Path:
    if config.output:
        return pathlib.Path(config.output)
    return pathlib.Path(config.output_dir) / f"eval_{workflow_name}_{config.task}_{config.split}.json"


def search_backend(config: ml_collections.ConfigDict):
    """agent.web_search's backend: `search_url` queried by the parent, or None (no search; offline)."""
    from w4s_jax.w4s.web_search import http_search

    url = str(config.get("search_url", ""))
    return http_search(url) if url else None


async def run_eval(config: ml_collections.ConfigDict, source: str, task, examples) -> dict:
    from w4s_jax.executor import ExecutorClient
    from w4s_jax.sandbox import Sandbox
    from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler

    executor = ExecutorClient.from_settings(section_settings(config, "executor"), config.output_dir)
    try:
        async with Sandbox(section_settings(config, "sandbox"), executor_handler(executor, search_backend(config))) as sandbox:
            report = await evaluate_workflow(source, task, examples, sandbox, executor,
                                             hidden_test_timeout_s=float(config.hidden_test_timeout_s))
    finally:
        await executor.aclose()
    return report.to_json()


def main(config: ml_collections.ConfigDict) -> None:
    config_checks.validate(config, sections=("executor", "sandbox", "output_dir"))
    for name in ("httpx", "httpx2"):  # one INFO line per executor request would drown the summary
        logging.getLogger(name).setLevel(logging.WARNING)
    workflow_name, source = load_workflow(str(config.workflow))
    task, examples = load_examples(config)
    output = report_path(config, workflow_name)
    started = time.monotonic()
    report = asyncio.run(run_eval(config, source, task, examples))
    report = {
        "workflow": str(config.workflow), "task": str(config.task), "split": str(config.split),
        "limit": int(config.limit), "executor_model": str(config.executor.model),
        "wall_s": round(time.monotonic() - started, 3), **report,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output) as handle:
        handle.write(json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False))  # strict JSON
    print(f"w4s-jax eval: {workflow_name} on {config.task}/{config.split}: score {report['score']:.4f} over "
          f"{report['num_samples']} samples ({report['num_errors']} errors); report: {output}")
