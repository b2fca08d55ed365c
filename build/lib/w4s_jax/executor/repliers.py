"""Scripted repliers for the StandInEndpoint: what the stand-in executor answers.

A replier is a callable `(ReplyRequest) -> str`. Two are provided:
- `TableReplier`: question -> answer lookup (exact, or the question found inside the prompt).
- `OracleStandIn`: an offline stand-in for a strong executor. It finds the task question in the
  prompt, looks up the gold answer, and answers correctly with a per-question probability around
  `accuracy`, else with one of several plausible wrong answers. For a code problem the gold answer
  is the reference program and a wrong one is that program with a realistic bug (code_bugs.py), so
  a workflow that runs the public tests and asks for a repair really does better. Wrong answers are
  spread over several candidates, so majority voting over samples really beats a single call (as
  with a real LLM), and asking for step-by-step reasoning adds a small bonus, so prompts can move
  scores.
  Randomness is seeded by the request, its occurrence at the server and the choice index: a fresh
  server given the same requests in the same order answers the same, while the n choices of one
  request (and repeated identical requests) differ. At temperature 0 every sample is the same.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping

from w4s_jax.executor.code_bugs import buggy_versions

_KEY_LIST = re.compile(r"ONLY using the keys (\[.*?\])", re.DOTALL)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_REASONING_KEYS = ("thinking", "reasoning", "thought", "rationale", "explanation", "steps")
_FEEDBACK_KEYS = ("feedback", "critique", "review", "comment", "comments", "reflection", "analysis", "issues")
_VERDICT_KEYS = ("correct", "verdict", "valid", "judgement", "judgment", "approved", "right", "passed", "ok")
_CODE_REQUEST = re.compile(r"def solution\(|solution\(\)|python code|```python", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ReplyRequest:
    """One choice to produce: the chat messages, sampling settings and a per-choice seed.

    `sample_index` is the request's `seed` field (the ExecutorClient sends its first sample index for
    the request) plus the choice index; None when the request carried no seed.
    """

    messages: list[dict[str, str]]
    temperature: float
    response_format: str
    choice_index: int
    seed: int
    sample_index: int | None = None

    @property
    def system(self) -> str:
        return "\n".join(m["content"] for m in self.messages if m["role"] == "system")

    @property
    def prompt_text(self) -> str:
        return "\n".join(m["content"] for m in self.messages)

    def requested_keys(self) -> list[str]:
        """The keys named by the paper's JSON system prompt ("ONLY using the keys [...]")."""
        match = _KEY_LIST.search(self.system)
        if not match:
            return []
        try:
            keys = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return []
        return [str(k) for k in keys] if isinstance(keys, list | tuple) else []


Replier = Callable[[ReplyRequest], str]


def uniform(seed: int, salt: str) -> float:
    """A reproducible number in [0, 1) from a seed and a label."""
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def format_reply(request: ReplyRequest, answer: str, reasoning: str, *, code: str | None = None,
                 verdict: bool | None = None) -> str:
    """Shapes an answer like an LLM would: JSON with the requested keys, code, or plain text.

    `code` is the `solution()` program of a program request (default: one returning `answer`);
    `verdict` is a reviewer's judgement of a given answer, put in verdict keys ("correct", "is_...")
    or, in plain text, on a "Verdict:" line.
    """
    wants_code = bool(_CODE_REQUEST.search(request.prompt_text)) and "def " not in answer
    code = code or f"def solution():\n    return {_python_literal(answer)}\n"
    if verdict is not None and request.response_format != "json_object":
        reasoning = f"{reasoning}\nVerdict: {'correct' if verdict else 'incorrect'}."
    if request.response_format == "json_object":
        keys = request.requested_keys() or ["answer"]
        reply: dict[str, str] = {}
        for key in keys:
            lowered = key.lower()
            if lowered in _REASONING_KEYS or (verdict is not None and lowered in _FEEDBACK_KEYS):
                reply[key] = reasoning
            elif verdict is not None and (lowered in _VERDICT_KEYS or lowered.startswith("is_")):
                reply[key] = str(verdict)
            elif "code" in lowered or "program" in lowered:
                reply[key] = answer if "def " in answer else code
            else:
                reply[key] = answer
        return json.dumps(reply, ensure_ascii=False)
    if wants_code:
        return f"{reasoning}\n```python\n{code}```"
    if "def " in answer:
        return f"```python\n{answer}\n```"
    if "boxed" in request.prompt_text:
        return f"{reasoning}\nThe answer is $\\boxed{{{answer}}}$."
    return f"{reasoning}\nThe answer is {answer}."


def _python_literal(answer: str) -> str:
    return answer if _NUMBER.match(answer) else repr(answer)


class TableReplier:
    """Answers with the table's answer for a known question; `default` otherwise."""

    def __init__(self, table: Mapping[str, str], default: str = "I do not know.") -> None:
        self.table = {str(q): str(a) for q, a in table.items()}
        self.default = default

    def find(self, request: ReplyRequest) -> tuple[str, str] | None:
        """(question, answer) of the table question in the prompt: a whole message, else the longest
        table question contained in the prompt; None if there is none."""
        for message in reversed(request.messages):
            if message["content"] in self.table:
                return message["content"], self.table[message["content"]]
        text = request.prompt_text
        best = None
        for question, answer in self.table.items():
            if question and question in text and (best is None or len(question) > len(best[0])):
                best = (question, answer)
        return best

    def lookup(self, request: ReplyRequest) -> str | None:
        found = self.find(request)
        return found[1] if found else None

    def __call__(self, request: ReplyRequest) -> str:
        answer = self.lookup(request)
        return format_reply(request, answer if answer is not None else self.default, "Looked it up.")


class OracleStandIn(TableReplier):
    """A reproducible, imperfect stand-in for a strong executor (see the module doc)."""

    def __init__(self, table: Mapping[str, str], accuracy: float = 0.6, spread: float = 0.3,
                 reasoning_bonus: float = 0.1, wrong_choices: int = 4) -> None:
        super().__init__(table)
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
        self.accuracy = accuracy
        self.spread = spread
        self.reasoning_bonus = reasoning_bonus
        self.wrong_choices = max(1, wrong_choices)
        self._answers = sorted(set(self.table.values()))

    def question_accuracy(self, question: str, request: ReplyRequest) -> float:
        """Per-question difficulty around `accuracy`, plus a bonus when reasoning is asked for."""
        difficulty = uniform(0, "difficulty:" + question) - 0.5
        p = self.accuracy + self.spread * difficulty
        keys = [k.lower() for k in request.requested_keys()]
        if any(k in _REASONING_KEYS for k in keys) or "step by step" in request.prompt_text.lower():
            p += self.reasoning_bonus
        return min(1.0, max(0.0, p))

    def wrong_answer(self, question: str, gold: str, pick: int) -> str:
        """One of `wrong_choices` plausible wrong answers for `gold`."""
        if "def " in gold:
            # Only the solution is edited: a reference program that repeats the question (a HumanEval
            # prompt with its signature and docstring) keeps that part as given.
            start = len(question) if gold.startswith(question) else 0
            versions = buggy_versions(gold, self.wrong_choices, seed=gold, editable_from=start)
            return versions[pick % len(versions)] if versions else unfinished_program(gold)
        if _NUMBER.match(gold.replace(",", "")):
            value = float(gold.replace(",", ""))
            candidates = [value + 1, value - 1, value * 2, value + 10, value / 2 if value else 3, value * 10]
            text = [str(int(c)) if float(c).is_integer() else f"{c:.4g}" for c in candidates]
            text = [t for t in text if t != gold] or ["0"]
            return text[pick % min(self.wrong_choices, len(text))]
        if len(gold) == 1 and gold.isalpha() and gold.isupper():
            letters = [c for c in "ABCD" if c != gold]
            return letters[pick % len(letters)]
        others = [a for a in self._answers if a != gold] or [gold + " (unsure)"]
        start = int(hashlib.sha256(gold.encode()).hexdigest(), 16) % len(others)
        return others[(start + pick) % len(others)]

    def __call__(self, request: ReplyRequest) -> str:
        found = self.find(request)
        if found is None:
            return format_reply(request, "I could not find the question.", "No known question in the prompt.")
        question, gold = found
        seed = 0 if request.temperature == 0 else request.seed
        correct = uniform(seed, "correct:" + question) < self.question_accuracy(question, request)
        if correct:
            return format_reply(request, gold, "Working through the problem step by step.")
        pick = int(uniform(seed, "wrong:" + question) * self.wrong_choices)
        return format_reply(request, self.wrong_answer(question, gold, pick), "Working through the problem quickly.")


def unfinished_program(gold: str) -> str:
    """A program with no site for a realistic bug: its header with a body that gives up."""
    header = gold.split("\n    ", 1)[0] if "\n    " in gold else gold
    return header.rstrip() + "\n    return None\n"


def load_answer_table(path: str) -> dict[str, str]:
    """A JSON object question -> answer, or a .jsonl file of {"question", "answer"} rows."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if not str(path).endswith(".jsonl"):
        try:
            table = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
        if not isinstance(table, dict):
            raise ValueError(f"{path}: expected a JSON object question -> answer (or a .jsonl file)")
        return {str(k): str(v) for k, v in table.items()}
    table = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
        for field in ("question", "answer"):
            if field not in row:
                raise ValueError(f"{path}:{line_number}: missing field '{field}'")
        table[str(row["question"])] = str(row["answer"])
    return table
