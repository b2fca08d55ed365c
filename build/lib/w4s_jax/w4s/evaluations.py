"""Workflow evaluations for the loop: journaled, deduplicated, and bounded in number at once.

`Evaluator` is the seam to the sandbox + executor (`SandboxEvaluator` in `w4s_jax/w4s/sandbox_evaluator.py`).
`JournaledEvaluations` wraps one: a result already in the journal is replayed for free, identical
requests in flight share one evaluation, and validation and test results live under different journal
kinds, so a test result can never be answered to a validation request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from w4s_jax.phase_clock import EVALUATION, PhaseClock
from w4s_jax.sandbox import workflow_hash
from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.outcomes import EvalOutcome

SPLIT_KINDS = {"validate": "evaluation", "test": "test_evaluation"}


class Evaluator(Protocol):
    async def evaluate(self, source: str, task: Any, examples: Sequence[Any]) -> EvalOutcome:
        """Runs `source` on `examples` (in the sandbox, with the executor) and scores it."""
        ...


class JournaledEvaluations:
    def __init__(self, evaluator: Evaluator, journal: Journal, max_concurrent: int, *,
                 clock: PhaseClock | None = None) -> None:
        self.evaluator = evaluator
        self.clock = clock if clock is not None else PhaseClock()  # the run's: evaluation time (replays are free)
        self.journal = journal
        self.semaphore = asyncio.Semaphore(max_concurrent)
        self.in_flight: dict[str, asyncio.Future[EvalOutcome]] = {}
        self.paid = 0
        self.replayed = 0

    async def run(self, task_name: str, task: Any, split: str, source: str,
                  examples: Sequence[Any]) -> EvalOutcome:
        if split not in SPLIT_KINDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_KINDS)}, got {split!r}")
        kind = SPLIT_KINDS[split]
        key = f"{task_name}|{split}|{workflow_hash(source)}|{len(examples)}"
        record = self.journal.get(kind, key)
        if record is not None:
            self.replayed += 1
            return EvalOutcome.from_json(record["outcome"])
        if key in self.in_flight:
            return await asyncio.shield(self.in_flight[key])
        future: asyncio.Future[EvalOutcome] = asyncio.get_running_loop().create_future()
        self.in_flight[key] = future
        try:
            async with self.semaphore:
                with self.clock.measure(EVALUATION):
                    outcome = await self.evaluator.evaluate(source, task, examples)
            self.paid += 1
            self.journal.put(kind, key, workflow_hash=workflow_hash(source), samples=len(examples),
                             score=outcome.score, outcome=outcome.to_json())
            future.set_result(outcome)
            return outcome
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: the waiters (if any) re-raise it themselves
            raise
        finally:
            del self.in_flight[key]
