"""The `agent` object a workflow sees inside its worker: the paper's interface, proxied to the parent.

Standard library only (imported by the worker under `python -I -S`). LLM calls and code execution
cross the channel to the parent, which owns the executor, keys, cache and budget; the text helpers
run locally. The public tests of the sample arrive with the job, the hidden ones never do.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable

CallParent = Callable[[str, dict], object]

BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}", re.DOTALL)
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|\d+\.\d+")
SENTENCE_END = re.compile(r"(?<!\d)[.!?]\s+")
FENCED = (re.compile(r"```python\n(.*?)\n```", re.DOTALL), re.compile(r"```\n(.*?)\n```", re.DOTALL))
REFLECTION_PROMPT = """A Python solution to the problem below failed its public tests or did not run.
Analyse why, then give a corrected solution (code only, no tests).

### Problem
{problem}

### Solution
{solution}

### Execution
{execution}

### Failed tests
{failed}
"""


class Agent:
    """Keyword-only methods with the reference signatures, so paper workflows run unchanged."""

    def __init__(self, call_parent: CallParent, public_tests: list[str], entry_point: str) -> None:
        self._call_parent = call_parent
        self._public_tests = list(public_tests)
        self._entry_point = entry_point

    def call_llm(self, *, messages, model="gpt-4o-mini", temperature=1.0, max_completion_tokens=4096,
                 num_of_response=1, response_format="text", agent_role="task solver", instructions=""):
        """Plain-text replies from the executor: a list of `num_of_response` strings."""
        return self._call_parent("call_llm", {
            "messages": messages, "model": model, "temperature": temperature,
            "max_completion_tokens": max_completion_tokens, "num_of_response": num_of_response,
            "response_format": response_format, "agent_role": agent_role, "instructions": instructions,
        })

    def call_json_format_llm(self, *, messages, model="gpt-4o-mini", temperature=1.0,
                             max_completion_tokens=4096, num_of_response=1, agent_role="task solver",
                             return_dict_keys=(), instructions=""):
        """JSON replies from the executor: a list of dicts holding exactly `return_dict_keys`."""
        return self._call_parent("call_json_format_llm", {
            "messages": messages, "model": model, "temperature": temperature,
            "max_completion_tokens": max_completion_tokens, "num_of_response": num_of_response,
            "agent_role": agent_role, "return_dict_keys": list(return_dict_keys),
            "instructions": instructions,
        })

    def execute_code(self, code, timeout=5):
        """Runs `code` in its own sandboxed process and returns `solution()` (or the value of the last
        line or last assignment). Values JSON cannot carry come back as `str(value)`; tuples as lists."""
        try:
            return self._call_parent("execute_code", {"code": str(code), "timeout": float(timeout)})
        except Exception as error:
            raise Exception(f"Error when executing code: {error}") from None

    def extract_answer_str(self, answer_str):
        """The last \\boxed{...}, else the last number, else the last sentence."""
        text = str(answer_str)
        boxed = BOXED.findall(text)
        if boxed:
            return boxed[-1].strip()
        numbers = NUMBER.findall(text)
        if numbers:
            return numbers[-1].replace(",", "")
        sentences = [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
        return sentences[-1] if sentences else ""

    def extract_code_block(self, response, entry_point="solution"):
        """The first fenced block that defines `entry_point` ('' when none does)."""
        for pattern in FENCED:
            blocks = pattern.findall(str(response))
            if blocks:
                return next((b for b in blocks if f"def {entry_point}" in b), "")
        return ""

    def exec_test(self, solution, entry_point):
        """Runs the sample's public tests: "no error", a list of failures, or {"exec_fail_case": msg}."""
        program = _public_test_program(str(solution), str(entry_point), self._public_tests)
        try:
            outcomes = self._call_parent("execute_code", {"code": program, "timeout": 10.0})
        except Exception as error:
            return {"exec_fail_case": str(error)}
        if isinstance(outcomes, dict) and "exec_fail_case" in outcomes:
            return outcomes
        failures = [o for o in outcomes if not o.get("passed")]
        return failures if failures else "no error"

    def test_on_public_test(self, task, solution, entry_point, test_loop=3):
        """Public tests, and up to `test_loop` executor repairs while they fail."""
        count = 0
        for _ in range(test_loop):
            result = self.exec_test(solution, entry_point)
            if result == "no error":
                return {"result": True, "solution": solution, "feedback": result, "count": count}
            failed_to_run = isinstance(result, dict)
            prompt = REFLECTION_PROMPT.format(
                problem=task, solution=solution,
                execution=f"failed to run: {result['exec_fail_case']}" if failed_to_run else "ran",
                failed="(did not run)" if failed_to_run else json.dumps(result, indent=1),
            )
            reply = self.call_json_format_llm(
                messages=[{"role": "user", "content": prompt}], temperature=0.3,
                agent_role="Expert Python Programmer", return_dict_keys=["reflection", "code"],
                instructions="Give a reflection on the failure, then a corrected solution without tests.",
            )[0]
            solution = reply["code"]
            count += 1
        result = self.exec_test(solution, entry_point)
        return {"result": result == "no error", "solution": solution, "feedback": result, "count": count}


def _public_test_program(solution: str, entry_point: str, tests: list[str]) -> str:
    """Code for execute_code: defines the solution, runs each assert, returns per-test outcomes."""
    return textwrap.dedent("""
        _tests = {tests}
        _namespace = {{}}
        try:
            exec({solution}, _namespace)
            _candidate = _namespace[{entry_point}]
        except Exception as _error:
            _outcomes = {{"exec_fail_case": type(_error).__name__ + ": " + str(_error)}}
        else:
            _outcomes = []
            for _test in _tests:
                try:
                    exec(_test, dict(_namespace, candidate=_candidate))
                    _outcomes.append({{"test_case": _test, "passed": True}})
                except AssertionError as _error:
                    _outcomes.append({{"test_case": _test, "passed": False,
                                      "error_type": "AssertionError", "error_message": str(_error)}})
                except Exception as _error:
                    _outcomes = {{"exec_fail_case": type(_error).__name__ + ": " + str(_error)}}
                    break

        def solution():
            return _outcomes
        """).format(tests=repr(list(tests)), solution=repr(solution), entry_point=repr(entry_point))
