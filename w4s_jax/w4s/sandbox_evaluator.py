"""The real `Evaluator`: workflows run in the sandbox, the agent's calls land in the executor client.

An adapter from `w4s_jax.w4s.scoring.evaluate_workflow`'s report to what the loop keeps (`EvalOutcome`):
the question and gold answer come from the examples, the failing line's text from the workflow
source (the sandbox reports its number).

Why the handler wrapper: the sandbox hands every failure of an agent call back to the workflow as
an exception it may even catch, so an exhausted budget or a dead executor endpoint would look like
a bad workflow scoring 0, and that wrong score would be journaled for good. The wrapper notes such
executor failures per workflow, and the evaluation then raises instead of returning a score. A request
the endpoint rejects for what it asks (HTTP 400/413/422: a prompt over the context length, no valid
JSON from a weak model) is the workflow's doing: that stays the sample's error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from w4s_jax.executor.errors import ExecutorError
from w4s_jax.sandbox import Sandbox, SandboxSettings, workflow_hash
from w4s_jax.w4s.outcomes import CaseResult, EvalOutcome
from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler

MAX_ANSWER_CHARS = 2000


def answer_text(answer: object) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, default=str)
    return text[:MAX_ANSWER_CHARS]


def failing_line(source: str, line: object) -> str:
    """'line N: <code>' for a line number inside the workflow, '' otherwise."""
    if not isinstance(line, int) or isinstance(line, bool):
        return ""
    lines = source.splitlines()
    return f"line {line}: {lines[line - 1].strip()}" if 1 <= line <= len(lines) else f"line {line}"


class SandboxEvaluator:
    """Evaluates workflow sources in its own sandbox, whose agent calls go to one executor client.

    `async with SandboxEvaluator(settings, executor) as evaluator: await evaluator.evaluate(...)`."""

    def __init__(self, settings: SandboxSettings, executor: Any) -> None:
        self.executor = executor
        self.failures: dict[str, ExecutorError] = {}
        self._forward = executor_handler(executor)
        self.sandbox = Sandbox(settings, self._handle)

    async def __aenter__(self) -> SandboxEvaluator:
        await self.sandbox.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.sandbox.close()

    async def _handle(self, method: str, kwargs: dict, scope: str) -> object:
        try:
            return await self._forward(method, kwargs, scope)
        except ExecutorError as error:
            if not error.request_rejected:  # a rejected request is the sample's error, not the run's
                self.failures.setdefault(scope.split(":", 1)[0], error)
            raise

    async def evaluate(self, source: str, task: Any, examples: Sequence[Any]) -> EvalOutcome:
        prefix = workflow_hash(source)
        self.failures.pop(prefix, None)
        report = await evaluate_workflow(source, task, list(examples), self.sandbox, self.executor)
        failure = self.failures.pop(prefix, None)
        if failure is not None:
            raise failure  # not a score: the executor could not answer (budget, endpoint down)
        cases = []
        for example, sample in zip(examples, report.samples):
            error = sample.get("error")
            cases.append(CaseResult(
                example_id=str(example.id), question=example.question, gold=str(example.answer),
                answer=answer_text(sample.get("answer")), correct=bool(sample.get("correct")),
                error=f"{error['type']}: {error['message']}" if error else "",
                error_line=failing_line(source, error.get("line")) if error else "",
            ))
        return EvalOutcome(float(report.score), tuple(cases))
