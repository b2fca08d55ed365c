"""The SIMULATED executor's replier: what it answers to one request (simulated.py serves it).

Kept apart from the command line in simulated.py, so the calibration (simulated_calibrate.py), which
that command line runs, can build the same replier without importing its caller.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from w4s_jax.executor.repliers import ReplyRequest, format_reply
from w4s_jax.executor.simulated_model import (
    DEFAULT_RATES,
    Features,
    Problem,
    Rates,
    detect_features,
    draw,
    make_problem,
    reply_text,
    solve_probability,
)

MODEL_NAME = "simulated-executor"
DEFAULT_SPLITS = ("validate", "test")
REASONING = {  # one text per kind, right or wrong, free of numbers and of the words the features read
    "numeric": "Took the quantities from the task, combined them in the order the question sets out, "
               "and simplified the result.",
    "code": "Implemented the function from its signature and docstring, covering the cases the docstring describes.",
    "text": "Worked from the definitions in the task to a simplified final expression.",
}
VERDICT = {True: "The computation holds up.", False: "The computation has a mistake in it."}
REPAIR = "Traced the failure to the function body and rewrote the part that produced it."
UNKNOWN = "I could not find the question."
GREEDY = "greedy"  # the sample key of every call at temperature 0


class SimulatedExecutor:
    """A `Replier` for StandInEndpoint that plays the simulated executor (module doc)."""

    def __init__(self, problems: Sequence[Problem], seed: int, rates: Mapping[str, Rates] | None = None) -> None:
        self.problems = {problem.question: problem for problem in problems}
        self.seed = int(seed)
        self.rates = dict(rates or DEFAULT_RATES)

    def find(self, request: ReplyRequest) -> Problem | None:
        """The problem whose question is a whole message, else the longest one inside the prompt."""
        for message in reversed(request.messages):
            if message["content"] in self.problems:
                return self.problems[message["content"]]
        text = request.prompt_text
        found = [question for question in self.problems if question and question in text]
        return self.problems[max(found, key=len)] if found else None

    def __call__(self, request: ReplyRequest) -> str:
        problem = self.find(request)
        if problem is None:
            return format_reply(request, UNKNOWN, "No known question in the prompt.")
        features = detect_features(request, problem)
        rates = self.rates[problem.kind]
        if request.temperature == 0:
            sample: object = GREEDY
        else:
            sample = request.sample_index if request.sample_index is not None else request.choice_index
        if features.repair:
            return self._repair(request, problem, features, rates, sample)
        if features.verify:
            return self._verify(request, problem, features, rates, sample)
        return self._solve(request, problem, features, rates, sample)

    # ----- the three kinds of call -----

    def _solve(self, request: ReplyRequest, problem: Problem, features: Features, rates: Rates,
               sample: object) -> str:
        p = solve_probability(problem, features, rates, greedy=sample == GREEDY)
        name = self.pick(problem, features, rates, sample, p)
        answer = self.text_of(problem, name)
        if not features.program:
            return format_reply(request, answer, REASONING[problem.kind])
        raises = name != "gold" and draw(self.seed, problem.key, features.key, sample, "raise") < rates.program_raise
        result = "results" if raises else "result"  # a wrong program sometimes names a variable it never set
        code = f"def solution():\n    result = {answer}\n    return {result}\n"
        return format_reply(request, answer, REASONING[problem.kind], code=code)

    def _verify(self, request: ReplyRequest, problem: Problem, features: Features, rates: Rates,
                sample: object) -> str:
        right = features.given == "gold"
        flag_rate = rates.flag_right if right else rates.flag_wrong
        flagged = draw(self.seed, problem.key, "flag", features.given, sample) < flag_rate
        if not flagged:
            name = features.given
        elif problem.kind == "code":  # a correction without the failing test shown rarely finds the bug
            name = self.pick(problem, features, rates, sample, 0.0 if right else rates.repair_blind, features.given)
        else:
            p = solve_probability(problem, features, rates, greedy=sample == GREEDY)
            name = self.pick(problem, features, rates, sample, p, features.given)
        return format_reply(request, self.text_of(problem, name), VERDICT[not flagged], verdict=not flagged)

    def _repair(self, request: ReplyRequest, problem: Problem, features: Features, rates: Rates,
                sample: object) -> str:
        if features.given == "gold":
            return format_reply(request, problem.gold, REPAIR)
        name = self.pick(problem, features, rates, sample, rates.repair_with_test, features.given)
        return format_reply(request, self.text_of(problem, name), REPAIR)

    # ----- draws -----

    def pick(self, problem: Problem, features: Features, rates: Rates, sample: object, p: float,
             exclude: str = "") -> str:
        """'gold' with probability p, else a wrong answer ('wrong:<i>'): the near miss with probability
        `near_miss_share`, else one of the others; never `exclude` (a given answer being replaced)."""
        key = (self.seed, problem.key, features.key, sample)
        wrong = [f"wrong:{i}" for i in range(len(problem.wrong))]
        if draw(*key, "right") < p and exclude != "gold":
            return "gold"
        if draw(*key, "near") < rates.near_miss_share or len(wrong) == 1:
            choice = 0
        else:
            choice = 1 + int(draw(*key, "other") * (len(wrong) - 1))
        if wrong[choice] == exclude:
            choice = (choice + 1) % len(wrong)
        return wrong[choice] if wrong[choice] != exclude else "gold"

    @staticmethod
    def text_of(problem: Problem, name: str) -> str:
        """The reply text of an answer name: the gold reply, a wrong one, or the proposed text itself."""
        if name == "gold" or name.startswith("wrong:"):
            return reply_text(problem, name)
        return problem.wrong[0] if problem.kind == "code" else name.split(":", 1)[-1]


def build_problems(task_name: str, data_dir: str, seed: int, splits: Sequence[str] = DEFAULT_SPLITS,
                   task_seed: int = 0) -> list[Problem]:
    """The simulator's problems from the task's examples of `splits` (their gold replies, and for
    numeric tasks the worked solutions' calculation steps)."""
    from w4s_jax.tasks import get_task
    from w4s_jax.tasks.arithmetic_tasks import NumericTask

    task = get_task(task_name, task_seed)
    kind = "code" if task.is_code else "numeric" if isinstance(task, NumericTask) else "text"
    problems: dict[str, Problem] = {}
    for split in splits:
        examples = task.load(split, data_dir)
        worked = _worked_solutions(task, split, data_dir, len(examples)) if kind == "numeric" else {}
        for index, example in enumerate(examples):
            problems.setdefault(example.question, make_problem(seed, example.question, task.gold_reply(example),
                                                                kind, worked.get(index, "")))
    return list(problems.values())


def _worked_solutions(task, split: str, data_dir: str, count: int) -> dict[int, str]:
    """Row index -> the worked solution with `<<a*b=c>>` steps (GSM8K's `answer`, AFlow's `cot`), where
    the rows carry one; {} where the rows cannot be read apart from the examples."""
    from w4s_jax.tasks.base import PACKAGE_PREFIX, TFDS_PREFIX

    if data_dir.startswith(TFDS_PREFIX):
        return {}
    if data_dir.startswith(PACKAGE_PREFIX):
        rows = task.package_rows(data_dir[len(PACKAGE_PREFIX):], split)
    else:
        rows = task.rows(split, pathlib.Path(data_dir))
    if len(rows) != count:
        return {}
    return {index: text for index, row in enumerate(rows)
            for text in [next((str(row.fields[f]) for f in ("cot", "answer", "solution")
                               if "<<" in str(row.fields.get(f, ""))), "")] if text}
