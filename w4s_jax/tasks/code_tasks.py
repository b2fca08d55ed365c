"""Code generation with hidden tests: HumanEval and MBPP (pass@1 through `check_program`)."""

from __future__ import annotations

import ast
import json
import pathlib

from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.code import humaneval_source, mbpp_source, runner_program
from w4s_jax.tasks.loaders import DataError, Row, read_jsonl


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
    is_code = True
    answer_type = "Python source code defining the requested function (a fenced block is fine)"


class HumanEval(CodeTask):
    name = "humaneval"
    description = ("HumanEval: write a Python function from its signature and docstring. The answer is the "
                   "complete function (its imports included); hidden unit tests decide pass or fail.")
    worked_example = (
        'Task:\ndef add_one(values: list) -> list:\n    """Return a new list with 1 added to every element.\n'
        '    >>> add_one([1, 2])\n    [2, 3]\n    """\n'
        'Answer: {"answer": "def add_one(values: list) -> list:\\n    return [v + 1 for v in values]\\n"}'
    )
    split_note = "validate (33) and test (131) from the AFlow/W4S split files; pass@1 via check_program"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = read_jsonl(data_dir / "humaneval" / f"{split}.jsonl")
        return with_public_tests(rows, public_tests(data_dir, "humaneval", "problem_id"), "task_id")

    def to_example(self, row: Row) -> Example:
        task_id = row.get("task_id")
        prompt, entry_point, test = row.get("prompt"), row.get("entry_point"), row.get("test")
        if f"def {entry_point}" not in prompt:
            raise DataError(f"{row.location}: field 'prompt' does not define entry_point {entry_point!r}")
        return Example(task_id, prompt, row.get("canonical_solution"),
                       {"location": row.location, "entry_point": entry_point, "test": test,
                        "public_tests": row.fields["_public_tests"]})

    def check_program(self, prediction: object, example: Example) -> str:
        meta = example.meta
        return runner_program(humaneval_source(example.question, prediction, meta["test"], meta["entry_point"]))


class MBPP(CodeTask):
    name = "mbpp"
    description = ("MBPP (sanitized): write a short Python function from a one-line description and its "
                   "signature. The answer is the complete function; hidden asserts decide pass or fail.")
    worked_example = (
        "Task: Write a function to return the largest of three numbers.\n\ndef max_of_three(a, b, c):\n"
        'Answer: {"answer": "def max_of_three(a, b, c):\\n    return max(a, b, c)\\n"}'
    )
    split_note = "validate (86) and test (341) from the W4S split files; pass@1 via check_program"

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

    def check_program(self, prediction: object, example: Example) -> str:
        meta = example.meta
        return runner_program(mbpp_source(meta["test_imports"], prediction, meta["test"], meta["entry_point"]))
