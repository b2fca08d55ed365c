"""What the W4S loop keeps of one workflow evaluation, in a form the journal can store and replay.

The loop needs per case only what the feedback shows (question, the workflow's answer, gold, correct
or the error and its line), plus the score. Keeping this small and JSON-shaped is what lets a
resumed run replay an evaluation from the journal instead of paying for it again.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One validation sample as seen by the meta-agent's feedback."""

    example_id: str
    question: str
    gold: str
    answer: str
    correct: bool
    error: str = ""
    error_line: str = ""


@dataclasses.dataclass(frozen=True)
class EvalOutcome:
    """Score over the evaluated samples and the per-sample results."""

    score: float
    cases: tuple[CaseResult, ...]

    @property
    def first_error(self) -> CaseResult | None:
        return next((case for case in self.cases if case.error), None)

    @property
    def error_count(self) -> int:
        return sum(1 for case in self.cases if case.error)

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "cases": [dataclasses.asdict(case) for case in self.cases]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalOutcome:
        return cls(float(data["score"]), tuple(CaseResult(**case) for case in data["cases"]))
