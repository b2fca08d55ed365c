"""Feedback on an evaluated workflow: its validation score, how it moved, and sampled validation cases.

Only validation outcomes ever reach this module; test scores and test cases are kept by the runner
for the report and have no path into a prompt.
"""

from __future__ import annotations

import random

from w4s_jax.w4s.outcomes import CaseResult, EvalOutcome
from w4s_jax.w4s.prompts import format_score

MAX_FIELD_CHARS = 600


def describe_change(before: float, after: float) -> str:
    """'increased from X to Y' / 'decreased from X to Y' / 'unchanged at X'."""
    if after > before:
        return f"increased from {format_score(before)} to {format_score(after)}"
    if after < before:
        return f"decreased from {format_score(before)} to {format_score(after)}"
    return f"unchanged at {format_score(after)}"


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " ...[truncated]"


def sample_cases(outcome: EvalOutcome, count: int, seed: int) -> list[CaseResult]:
    """Up to `count` cases, failures first (they teach the most), each group shuffled by `seed`."""
    rng = random.Random(seed)
    failures = [case for case in outcome.cases if not case.correct]
    successes = [case for case in outcome.cases if case.correct]
    rng.shuffle(failures)
    rng.shuffle(successes)
    return (failures + successes)[:count]


def case_text(index: int, case: CaseResult) -> str:
    lines = [f"Case {index}:", f"Question: {_clip(case.question)}"]
    if case.error:
        lines.append(f"Workflow error: {_clip(case.error)}")
        if case.error_line:
            lines.append(f"Failing line: {case.error_line.strip()}")
    else:
        lines.append(f"Workflow answer: {_clip(case.answer)}")
    lines.append(f"Gold answer: {_clip(case.gold)}")
    lines.append("Result: correct" if case.correct else "Result: wrong")
    return "\n".join(lines)


def feedback_text(outcome: EvalOutcome, previous: float | None, best: float | None, cases: int,
                  seed: int) -> str:
    """The observation after a workflow: score, change against previous and best, sampled cases."""
    lines = [f"Validation score: {format_score(outcome.score)} over {len(outcome.cases)} validation questions."]
    if previous is not None:
        lines.append(f"Against the previous workflow the score {describe_change(previous, outcome.score)}.")
    if best is not None:
        lines.append(f"Against the best workflow so far the score {describe_change(best, outcome.score)}.")
    shown = sample_cases(outcome, cases, seed)
    if shown:
        lines.append("")
        lines.append(f"{len(shown)} sampled validation cases:")
        for index, case in enumerate(shown, start=1):
            lines.append("")
            lines.append(case_text(index, case))
    return "\n".join(lines)
