"""Score one workflow on a list of examples: sandboxed runs, executor calls, task scoring.

Reused by `w4s-jax eval` and by the W4S loop for validation (and the final test) scores. Non-code
tasks are scored in-process with `task.score` on the JSON answer; code tasks by running the task's
hidden-test program through `sandbox.run_program`, in a worker apart from the workflow's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from w4s_jax.sandbox import SampleContext, SampleResult, Sandbox, workflow_hash

HIDDEN_TEST_TIMEOUT_S = 30.0


@dataclasses.dataclass
class EvalReport:
    """Mean score over the examples, one record per sample, executor usage and sandbox layers."""

    score: float
    samples: list[dict]
    usage: dict
    workflow_hash: str = ""
    sandbox_layers: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s["error"] is not None)

    def to_json(self) -> dict:
        return {"score": self.score, "num_samples": len(self.samples), "num_errors": self.errors,
                "workflow_hash": self.workflow_hash, "sandbox_layers": list(self.sandbox_layers),
                "usage": self.usage, "samples": self.samples}


def executor_handler(executor):
    """The sandbox handler that lands the agent's LLM calls in an ExecutorClient, with their scope."""

    async def handle(method: str, kwargs: dict, scope: str) -> object:
        if method == "call_llm":
            return await executor.call_llm(**kwargs, scope=scope)
        if method == "call_json_format_llm":
            return await executor.call_json_format_llm(**kwargs, scope=scope)
        raise ValueError(f"unknown agent method {method!r}")

    return handle


def sample_context(example) -> SampleContext:
    """The public tests (never the hidden ones) a code task's example carries in its meta."""
    meta = example.meta or {}
    return SampleContext(public_tests=tuple(str(t) for t in meta.get("public_tests", ()) or ()),
                         entry_point=str(meta.get("entry_point", "") or ""))


async def evaluate_workflow(source: str, task, examples: Sequence, sandbox: Sandbox, executor=None,
                            *, hidden_test_timeout_s: float = HIDDEN_TEST_TIMEOUT_S) -> EvalReport:
    """Runs `source` on every example and scores it; a failing sample scores 0 with its error kept.

    When `sandbox` has no handler yet, the agent's LLM calls go to `executor`.
    """
    if sandbox.handler is None and executor is not None:
        sandbox.handler = executor_handler(executor)
    results = await sandbox.run_workflow(
        source, [e.question for e in examples], [e.id for e in examples], [sample_context(e) for e in examples]
    )
    scores = await asyncio.gather(*(
        _score(task, example, result, sandbox, hidden_test_timeout_s) for example, result in zip(examples, results)
    ))
    samples = []
    prefix = workflow_hash(source)
    for example, result, (score, score_error) in zip(examples, results, scores):
        error = result.error or score_error
        tokens, dollars = _scope_cost(executor, f"{prefix}:{example.id}", result.tokens)
        samples.append({
            "id": example.id, "answer": result.answer, "correct": error is None and score >= 1.0,
            "score": score, "error": error, "wall_s": round(result.wall_s, 4),
            "executor_calls": result.executor_calls, "tokens": tokens, "dollars": dollars,
        })
    mean = sum(s["score"] for s in samples) / len(samples) if samples else 0.0
    usage = dict(executor.usage()) if executor is not None else {}
    usage["sandbox"] = {"executor_calls": sum(r.executor_calls for r in results),
                        "wall_s": round(sum(r.wall_s for r in results), 4)}
    return EvalReport(score=mean, samples=samples, usage=usage, workflow_hash=prefix,
                      sandbox_layers=sandbox.layers)


def _scope_cost(executor, scope: str, fallback_tokens: int) -> tuple[int, float]:
    """Tokens and dollars the executor billed to one sample's scope (cache hits cost nothing)."""
    usage = executor.scope_usage(scope) if hasattr(executor, "scope_usage") else {}
    tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
    return (tokens or fallback_tokens), float(usage.get("dollars", 0.0))


async def _score(task, example, result: SampleResult, sandbox: Sandbox,
                 timeout_s: float) -> tuple[float, dict | None]:
    if result.error is not None:
        return 0.0, None
    try:
        if task.is_code:
            program = task.check_program(result.answer, example)
            outcome = await sandbox.run_program(program, timeout_s)
            if outcome.passed:
                return 1.0, None
            failure = outcome.error or {"type": "TestFailure", "message": "hidden tests failed", "line": None}
            return 0.0, {**failure, "type": f"HiddenTests.{failure['type']}", "line": None}
        return float(task.score(result.answer, example)), None
    except Exception as error:  # a scorer that chokes on an odd answer must not lose the other samples
        return 0.0, {"type": f"ScoreError.{type(error).__name__}", "message": str(error)[:2000], "line": None}
