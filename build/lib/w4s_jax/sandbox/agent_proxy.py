"""The `agent` object a workflow sees inside its worker: the paper's interface, proxied to the parent.

Standard library only (imported by the worker under `python -I -S`). LLM calls and code execution
cross the channel to the parent, which owns the executor, keys, cache and budget; the text helpers
run locally. The public tests of the sample arrive with the job, the hidden ones never do.

Workflows written for the W4S release (`fannie1208/W4S`, `src/agent/executor_agent.py`, class `Agent`)
run unchanged: the signatures are the same, and so is what the release does before any request is
sent, here in the worker so that a workflow can catch it (a malformed request never reaches the
channel, whose parent side kills a worker that breaks the protocol):
- `call_llm` turns every message content into `str(content)`; `response_format="json"` (or
  "json_object") returns each reply parsed by `json.loads`, `{"JSONDecodeError": text}` when it does
  not parse; `tools` and `tool_choice` are accepted and not sent, since the release returns only each
  reply's text, which is all this executor gives;
- `call_json_format_llm` raises the release's ValueError for messages that are not a list of dicts
  with exactly the string fields "role" and "content";
- `execute_code` returns `solution()`'s value as a Python value: tuples, sets, Fractions, dicts with
  any keys come back as themselves (sandbox/values.py says how they cross the channel).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable

CallParent = Callable[[str, dict], object]
RESPONSE_FORMATS = {"text": "text", "json": "json_object", "json_object": "json_object"}

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
                 num_of_response=1, response_format="text", agent_role="task solver", instructions="",
                 tools=None, tool_choice=None):
        """Replies from the executor: a list of `num_of_response` strings, or of parsed JSON values
        with response_format "json" (module doc)."""
        fmt = _response_format(response_format)
        replies = self._call_parent("call_llm", {
            "messages": _str_contents(messages), "model": model, "temperature": temperature,
            "max_completion_tokens": max_completion_tokens, "num_of_response": num_of_response,
            "response_format": fmt, "agent_role": agent_role, "instructions": instructions,
        })
        return replies if fmt == "text" else [_parse_json(reply) for reply in replies]

    def call_json_format_llm(self, *, messages, model="gpt-4o-mini", temperature=1.0,
                             max_completion_tokens=4096, num_of_response=1, agent_role="task solver",
                             return_dict_keys=(), instructions=""):
        """JSON replies from the executor: a list of dicts holding exactly `return_dict_keys`."""
        _check_messages(messages)
        return self._call_parent("call_json_format_llm", {
            "messages": messages, "model": model, "temperature": temperature,
            "max_completion_tokens": max_completion_tokens, "num_of_response": num_of_response,
            "agent_role": agent_role, "return_dict_keys": list(return_dict_keys),
            "instructions": instructions,
        })

    def execute_code(self, code, timeout=5):
        """Runs `code` in its own sandboxed process and returns `solution()` (or the value of the last
        line or last assignment) as a Python value (module doc)."""
        try:
            return self._run_code(str(code), float(timeout))
        except Exception as error:
            raise Exception(f"Error when executing code: {error}") from None

    def read_attachment(self):
        """The text of the sample's attached file (GAIA), read by the parent: text-like files only (.txt
        .csv .json .jsonl .md .py .xml .html); AttachmentError, which a workflow can catch, otherwise."""
        return self._call_parent("read_attachment", {})

    def web_search(self, query):
        """Search results as text from the parent's configured search backend; with none configured
        (offline) a WebSearchUnavailable error the workflow can catch. The sandbox never reaches the network."""
        return self._call_parent("web_search", {"query": str(query)})

    def _run_code(self, code: str, timeout: float) -> object:
        """The decoded value: `call_parent` turns the channel's tagged encoding back into Python."""
        return self._call_parent("execute_code", {"code": code, "timeout": timeout})

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
            outcomes = self._run_code(program, 10.0)
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


def _response_format(response_format) -> str:
    """The request format ("text" or "json_object") for the release's response_format values."""
    name = response_format.get("type") if isinstance(response_format, dict) else response_format
    if not isinstance(name, str) or name not in RESPONSE_FORMATS:
        raise ValueError(f"response_format must be one of {sorted(RESPONSE_FORMATS)}, got {response_format!r}")
    return RESPONSE_FORMATS[name]


def _parse_json(text):
    """A JSON reply as the release parses it: the decoded value, else {"JSONDecodeError": text}."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {"JSONDecodeError": text}


def _str_contents(messages) -> list[dict]:
    """call_llm's messages with each content as str(content), as the release sends them."""
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    copied = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message at index {index} must be a dictionary")
        if "content" not in message:
            raise ValueError(f"message at index {index} has no 'content'")
        if not isinstance(message.get("role"), str):
            raise ValueError(f"'role' at index {index} must be a string")
        copied.append({**message, "content": str(message["content"])})
    return copied


def _check_messages(messages) -> None:
    """The release's checks of call_json_format_llm's messages, with its ValueError messages."""
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message at index {index} must be a dictionary")
        keys = set(message)
        if keys != {"role", "content"}:
            problem = f"message at index {index} must contain exactly two keys: 'role' and 'content'."
            if keys - {"role", "content"}:
                problem += f" Found extra keys: {keys - {'role', 'content'}}."
            if {"role", "content"} - keys:
                problem += f" Missing required keys: {({'role', 'content'} - keys)}."
            raise ValueError(problem)
        for field in ("role", "content"):
            if not isinstance(message[field], str):
                raise ValueError(f"'{field}' at index {index} must be a string")


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
