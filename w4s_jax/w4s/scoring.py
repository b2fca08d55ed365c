"""Score one workflow on a list of examples: sandboxed runs, executor calls, task scoring.

Reused by `w4s-jax eval` and by the W4S loop for validation (and the final test) scores. Non-code
tasks are scored in-process with `task.score` on the JSON answer; code tasks by `task.run_hidden_tests`:
the candidate runs in a worker apart from the workflow's and apart from the tests, and the verdict is
decided in this process on plain data (tasks/hidden_tests.py).

The answer comes from untrusted code, so scoring it is bounded: an answer longer than
MAX_SCORED_ANSWER_CHARS scores 0 without being looked at, and `task.score` runs in a thread under
SCORE_TIMEOUT_S, off the event loop (a scorer that times out or raises gives that sample a ScoreError
and 0; the run goes on). A thread cannot be killed, so the scorers bound
their own inputs too (e.g. tasks/numeric.py's digit and exponent caps): the time limit is the last line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence

from w4s_jax.sandbox import SampleContext, SampleResult, Sandbox, workflow_hash

HIDDEN_TEST_TIMEOUT_S = 30.0
SCORE_TIMEOUT_S = 10.0
MAX_SCORED_ANSWER_CHARS = 100_000


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


class WebSearchUnavailable(RuntimeError):
    """agent.web_search with no search backend configured (always so offline); a workflow may catch it."""


def executor_handler(executor, search=None):
    """The sandbox handler that lands the agent's LLM calls in an ExecutorClient, with their scope, and
    its web searches in `search` (an async `search(query) -> str`; None: WebSearchUnavailable)."""

    async def handle(method: str, kwargs: dict, scope: str) -> object:
        if method == "call_llm":
            return await executor.call_llm(**kwargs, scope=scope)
        if method == "call_json_format_llm":
            return await executor.call_json_format_llm(**kwargs, scope=scope)
        if method == "web_search":
            if search is None:
                raise WebSearchUnavailable("agent.web_search: no search backend is configured for this run "
                                           "(none is offline); answer without searching")
            return str(await search(kwargs["query"]))
        raise ValueError(f"unknown agent method {method!r}")

    return handle


def sample_context(example) -> SampleContext:
    """The public tests (never the hidden ones) a code task's example carries in its meta, and the
    attached file (GAIA) the parent reads for agent.read_attachment()."""
    meta = example.meta or {}
    return SampleContext(public_tests=tuple(str(t) for t in meta.get("public_tests", ()) or ()),
                         entry_point=str(meta.get("entry_point", "") or ""),
                         attachment=str(meta.get("attachment", "") or ""))


async def evaluate_workflow(source: str, task, examples: Sequence, sandbox: Sandbox, executor=None,
                            *, hidden_test_timeout_s: float = HIDDEN_TEST_TIMEOUT_S) -> EvalReport:
    """Runs `source` on every example and scores it; a failing sample scores 0 with its error kept.

    The agent's calls go to the handler `sandbox` was built with (usually `executor_handler(executor)`);
    `executor` gives each sample's tokens and dollars and the report's usage.
    """
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


def _answer_chars(answer: object) -> int:
    return len(answer) if isinstance(answer, str) else len(json.dumps(answer, ensure_ascii=False))


async def _bounded(function, *args):
    """`function(*args)` in a thread under SCORE_TIMEOUT_S (TimeoutError past it)."""
    return await asyncio.wait_for(asyncio.to_thread(function, *args), SCORE_TIMEOUT_S)


async def _score(task, example, result: SampleResult, sandbox: Sandbox,
                 timeout_s: float) -> tuple[float, dict | None]:
    if result.error is not None:
        return 0.0, None
    chars = _answer_chars(result.answer)
    if chars > MAX_SCORED_ANSWER_CHARS:
        return 0.0, {"type": "ScoreError.AnswerTooLong", "line": None,
                     "message": f"answer of {chars} characters is over the scorer's limit of {MAX_SCORED_ANSWER_CHARS}"}
    try:
        if task.is_code:
            verdict = await task.run_hidden_tests(result.answer, example, sandbox.run_code, timeout_s)
            if verdict.passed:
                return 1.0, None
            return 0.0, {**verdict.error, "type": f"HiddenTests.{verdict.error['type']}", "line": None}
        score = float(await _bounded(task.score, result.answer, example))
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"the scorer returned {score!r}, not a score in [0, 1]")
        return score, None
    except TimeoutError:
        return 0.0, {"type": "ScoreError.TimeoutError", "line": None,
                     "message": f"scoring the answer took over {SCORE_TIMEOUT_S:g} s"}
    except Exception as error:  # a scorer that chokes on an odd answer must not lose the other samples
        return 0.0, {"type": f"ScoreError.{type(error).__name__}", "message": str(error)[:2000], "line": None}
