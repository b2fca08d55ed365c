"""A code task's verdict, decided in the trusted parent on plain data (how the tests are split:
tasks/test_plan.py).

1. The cases program (benchmark code only) gives the calls' arguments and each case's expected
   values; it depends on the problem alone, so it runs once per problem and is cached.
2. The candidate program gets the candidate's source and the arguments only, and returns each
   result as strict tagged data (sandbox/values.py): its worker holds no test, no expected value
   and nothing that decides the verdict; whatever it writes to its channel is read as data.
3. Here each recorded case is judged with the official test's own comparison (`==`, `!=`, `abs(a - b)
   < t`, `math.isclose`, truth, `is`) on the decoded plain values, so no method of the candidate's
   runs on this side; results of a wrong shape fail the sample.
4. Only where the tests hold asserts of another form, the replay program (benchmark code only) judges
   them on the recorded plain results.
A sample's error never names an input or an expected value: trajectories and reports may reach the
meta-agent, and the hidden tests must stay hidden.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable

from w4s_jax.sandbox import values as tagged
from w4s_jax.tasks.test_plan import (
    CASE_KINDS,
    HiddenSuite,
    UnsupportedTests,
    candidate_program,
    cases_program,
    replay_program,
)

RunCode = Callable[[str, float], Awaitable[object]]  # Sandbox.run_code: tagged JSON, raises on failure
PLAN_CACHE_SIZE = 4096
_ERROR_TYPE = re.compile(r"^([A-Za-z_][\w.]{0,80}): ")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether the candidate passed its hidden tests; else an error {type, message, line}."""

    passed: bool
    error: dict | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    """One assert judged here: call `index`'s result against `expected` (operands after the call)."""

    index: int
    kind: str
    expected: tuple


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the cases program found: the calls (tagged JSON each), which are truth tests, the cases,
    and whether deferred asserts need a replay."""

    calls: tuple[str, ...]
    truth: tuple[bool, ...]
    cases: tuple[Case, ...]
    replay: bool


class PlanCache:
    """Plans by problem (a hash of its setup, tests and entry point); the oldest go first when full."""

    def __init__(self, size: int = PLAN_CACHE_SIZE) -> None:
        self.size, self.plans = size, collections.OrderedDict()

    @staticmethod
    def key(suite: HiddenSuite) -> str:
        text = json.dumps([suite.setup, suite.test, suite.entry_point])
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, suite: HiddenSuite) -> Plan | None:
        return self.plans.get(self.key(suite))

    def put(self, suite: HiddenSuite, plan: Plan) -> None:
        self.plans[self.key(suite)] = plan
        while len(self.plans) > self.size:
            self.plans.popitem(last=False)


class _Failed(Exception):
    """Ends a judgement with `error` as the sample's error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error = {"type": error_type, "message": message[:2000], "line": None}


async def judge(suite: HiddenSuite, candidate_source: str, run_code: RunCode, timeout_s: float,
                cache: PlanCache | None = None) -> Verdict:
    """Runs the hidden tests of `suite` on `candidate_source` (module doc); never raises for a bad
    candidate: its failure is the verdict's error."""
    try:
        plan = cache.get(suite) if cache is not None else None
        if plan is None:
            plan = await _plan(suite, run_code, timeout_s)
            if cache is not None:
                cache.put(suite, plan)
        program = candidate_program(candidate_source, suite.entry_point, list(plan.calls), list(plan.truth))
        answer = await _run(run_code, program, timeout_s, "")
        outputs_json, outputs = await asyncio.to_thread(_candidate_outputs, answer, plan)
        await asyncio.to_thread(_check_cases, plan, outputs)
        if plan.replay:
            answer = await _run(run_code, replay_program(suite, outputs_json, list(plan.calls)), timeout_s, "")
            if answer != "passed":
                raise _Failed("HiddenTestError", "the replay of the hidden tests did not finish")
    except _Failed as failed:
        return Verdict(False, failed.error)
    return Verdict(True)


async def _plan(suite: HiddenSuite, run_code: RunCode, timeout_s: float) -> Plan:
    try:
        program, deferred = cases_program(suite)
    except UnsupportedTests as error:
        raise _Failed("UnsupportedTests", str(error)) from None
    answer = await _run(run_code, program, timeout_s, "HiddenTestError.")
    try:
        return _parse_plan(answer, deferred)
    except (TypeError, ValueError, KeyError) as error:
        raise _Failed("HiddenTestError", f"the cases program gave a malformed plan: {error}") from None


def _parse_plan(answer: object, deferred: int) -> Plan:
    data = json.loads(answer) if type(answer) is str else None
    if type(data) is not dict:
        raise ValueError("expected a JSON object")
    calls, truth, raw_cases = data["calls"], data["truth"], data["cases"]
    if not (type(calls) is list and all(type(c) is str for c in calls) and type(truth) is list
            and len(truth) == len(calls) and all(type(t) is bool for t in truth) and type(raw_cases) is list):
        raise ValueError("calls, truth and cases have the wrong shape")
    cases = []
    for item in raw_cases:
        index, kind, expected = item
        if type(index) is not int or not 0 <= index < len(calls) or kind not in CASE_KINDS:
            raise ValueError(f"malformed case {str(item)[:80]}")
        cases.append(Case(index, kind, tuple(tagged.decode(expected))))
    return Plan(tuple(calls), tuple(truth), tuple(cases), replay=deferred > 0 and len(calls) > len(cases))


async def _run(run_code: RunCode, program: str, timeout_s: float, type_prefix: str) -> object:
    """One program in a fresh worker; its failure as _Failed with the error type it reported."""
    try:
        return await run_code(program, timeout_s)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # CodeExecutionError "Type: message", a timeout, a crash
        message = str(error)
        match = _ERROR_TYPE.match(message)
        error_type = match.group(1) if match else type(error).__name__
        raise _Failed(type_prefix + error_type, message[match.end():] if match else message) from None


def _candidate_outputs(answer: object, plan: Plan) -> tuple[str, list]:
    """The candidate program's results, checked and decoded: one per call, a bool for a truth test."""
    try:
        encoded = json.loads(answer) if type(answer) is str else None
        if type(encoded) is not list or len(encoded) != len(plan.calls):
            raise ValueError(f"expected a list of {len(plan.calls)} results")
        outputs = [tagged.decode(item) for item in encoded]
    except (ValueError, RecursionError) as error:
        raise _Failed("CandidateOutputError", f"the candidate's results are malformed: {str(error)[:200]}") from None
    if any(truth and type(output) is not bool for truth, output in zip(plan.truth, outputs)):
        raise _Failed("CandidateOutputError", "a truth test got something other than a bool")
    return answer, outputs


def _check_cases(plan: Plan, outputs: list) -> None:
    for number, case in enumerate(plan.cases, 1):
        if not _holds(case.kind, outputs[case.index], case.expected):
            raise _Failed("AssertionError", f"hidden test {number} of {len(plan.cases)} failed ({case.kind})")


def _holds(kind: str, output: object, expected: tuple) -> bool:
    """The official assert's comparison, on plain decoded values only; an error counts as failing."""
    try:
        if kind == "eq":
            return bool(output == expected[0])
        if kind == "ne":
            return bool(output != expected[0])
        if kind in ("truthy", "falsy"):
            return output is (kind == "truthy")
        if kind in ("is", "is_not"):
            return (output is expected[0]) == (kind == "is")
        if kind in ("abs_lt", "abs_le"):
            distance = abs(output - expected[0])
            return bool(distance < expected[1] if kind == "abs_lt" else distance <= expected[1])
        return math.isclose(output, expected[0], rel_tol=expected[1], abs_tol=expected[2])
    except (TypeError, ValueError, ArithmeticError, RecursionError):
        return False
