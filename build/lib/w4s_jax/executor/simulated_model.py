"""The model behind the SIMULATED executor: problems, strategy features and the chance of a right answer.

This is a simulation of an LLM executor for experiments, not a language model. It is built so that
the strategy of a workflow matters and its wording does not:

- **Problems** come from a task's examples. Each has a latent difficulty d ~ N(0, 1) drawn from a hash
  of (experiment seed, question), and for numeric tasks an arithmetic load L: the number of
  calculation steps of its worked solution (GSM8K's `<<a*b=c>>` annotations), else the count of
  numbers in the question minus one.
- **Strategy features** read from a request, with the problem's question cut out of the text first
  (`detect_features`): `reason` (reasoning keys such as thinking/reasoning/steps, or "step by step",
  "think", "reason", "explain"), `program` (numeric tasks: `solution()`, "python code", a code key),
  `verify` (a proposed answer is shown, "Answer: X" or a program, and the request asks to
  verify/check/critique/review it or to correct/revise/fix/refine it), `repair` (code tasks: a given
  program plus a failing test or an error: an `assert`, a Python exception name, a Traceback).
- **Chance of a right answer** of a solving call: p = sigmoid(logit), logit = base (task kind) +
  reason bonus (if reason) - difficulty_scale * d - arithmetic_penalty * max(0, L - free_steps)
  (numeric answers that are not programs); program answers use `program_logit` and pay no arithmetic
  penalty, but a wrong program raises with probability `program_raise` instead of returning a number.
- **Verify**: a reviewer flags a wrong given answer with probability `flag_wrong`, a right one with
  `flag_right`; one flag coin per (problem, given answer, sample), shared by a verdict request and a
  correction request on the same answer. Asked for a corrected answer, an unflagged answer is kept
  and a flagged one is replaced by a new draw that differs from it (right with the solving p).
- **Repair** (code): given a wrong program with its failing test shown, the reply is the reference
  with probability `repair_with_test`, else another realistic bug; without the test shown, a
  correction request fixes it with `repair_blind` only. Wrong programs are the reference with one
  realistic bug (`code_bugs.buggy_versions`).
- **Wrong answers** recur: with probability `near_miss_share` a wrong sample gives the problem's
  recurring near miss (a nearby number, or its most common bug), else one of the others.
- **Randomness** is keyed by (experiment seed, problem, strategy features, given answer, sample
  index), never by wording, temperature value above 0 or model name. At temperature 0 the sample
  index is ignored and the reply is a greedy decoder's: one fixed draw per (problem, features) from
  the sharpened chance p^k / (p^k + (1-p)^k), k = `greedy_sharpness`, so temperature 0 beats one
  sample at temperature > 0 and self-consistency gains over it stay small, as for strong real models.

Default rates (`DEFAULT_RATES`), calibrated to AFlow's Table 1 with GPT-4o-mini as executor (GSM8K
IO 92.7, CoT 92.4, CoT-SC 92.7, self-refine 89.6; HumanEval IO 87.0, CoT 88.6, CoT-SC 91.6,
self-refine 87.8; `python -m w4s_jax.executor.simulated calibrate` prints the simulated scores beside
them):
- numeric (GSM8K): base 4.35, reason +0.0 (IO and CoT score alike for 4o-mini), program 4.55
  (program-of-thought has no AFlow row: a little above CoT, more so on arithmetic-heavy problems),
  difficulty scale 3.0, arithmetic penalty 0.25 per step beyond 4, greedy sharpness 4, near miss
  0.75 of wrong samples, flag_right 0.1 (self-refine's 2.8-point loss comes from right answers
  flagged and changed);
- code (HumanEval): base 1.8, reason +0.15, difficulty scale 1.3, greedy sharpness 1.6 (CoT-SC
  gains 3 points there), near miss 0.8, flag_right 0.05;
- text (MATH and the rest): base -0.05, reason +0.0, difficulty scale 2.0, greedy sharpness 4,
  near miss 0.7, flag_right 0.05 (not calibrated: a guess near MATH CoT 48.8).
All kinds otherwise: 4 other wrong answers (WRONG_ANSWERS), program_raise 0.25, flag_wrong 0.6,
repair_with_test 0.6, repair_blind 0.15.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import statistics

from w4s_jax.executor.code_bugs import buggy_versions
from w4s_jax.executor.repliers import ReplyRequest, unfinished_program

KINDS = ("numeric", "code", "text")
WRONG_ANSWERS = 5  # per problem: the recurring near miss and 4 others
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_REASON = re.compile(r"step[- ]by[- ]step|\bthink|\breason|\bexplain|\bshow your work", re.IGNORECASE)
_REASON_KEYS = ("thinking", "reasoning", "thought", "rationale", "explanation", "steps")
_PROGRAM = re.compile(r"def solution\(|solution\(\)|python code|```python|\bpython program", re.IGNORECASE)
_VERIFY = re.compile(r"\b(verify|check|critique|critic|review|judge|evaluate|assess|whether)", re.IGNORECASE)
_CORRECT = re.compile(r"\b(correct|revise|fix|repair|debug|improve|refine|rewrite|feedback|update)", re.IGNORECASE)
_TEST_SHOWN = re.compile(r"\bassert\b|\bTraceback\b|\b[A-Z]\w*(?:Error|Exception)\b")
_GIVEN = re.compile(r"\b(?:final answer|answer)\b[\"']?\s*(?:is\b|[:=])\s*[\"'$]*([^\n]+)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Rates:
    """The simulated executor's behaviour on one kind of task (see the module doc)."""

    base_logit: float
    reason_bonus: float
    difficulty_scale: float
    program_logit: float = 0.0  # numeric tasks only
    arithmetic_penalty: float = 0.0  # per calculation step beyond `free_steps`, numeric non-program answers
    free_steps: int = 4
    near_miss_share: float = 0.7
    program_raise: float = 0.25
    greedy_sharpness: float = 4.0
    flag_wrong: float = 0.6
    flag_right: float = 0.05
    repair_with_test: float = 0.6
    repair_blind: float = 0.15


DEFAULT_RATES: dict[str, Rates] = {
    "numeric": Rates(base_logit=4.35, reason_bonus=0.0, difficulty_scale=3.0, program_logit=4.55,
                     arithmetic_penalty=0.25, near_miss_share=0.75, flag_right=0.1),
    "code": Rates(base_logit=1.8, reason_bonus=0.15, difficulty_scale=1.3, greedy_sharpness=1.6,
                  near_miss_share=0.8),
    "text": Rates(base_logit=-0.05, reason_bonus=0.0, difficulty_scale=2.0),
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem as the simulator knows it: its gold reply, latent difficulty and wrong answers."""

    question: str
    gold: str
    kind: str
    difficulty: float
    arithmetic_load: int
    wrong: tuple[str, ...]  # wrong[0] is the recurring near miss

    @property
    def key(self) -> str:
        return hashlib.sha256(self.question.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Features:
    """The strategy a request asks for; `given` names the proposed answer it shows ('' = none)."""

    reason: bool = False
    program: bool = False
    verify: bool = False
    repair: bool = False
    given: str = ""

    @property
    def key(self) -> str:
        """The features' part of a draw's key: which are on, and the given answer."""
        flags = "".join(letter for letter, on in zip("RPVF", (self.reason, self.program, self.verify, self.repair))
                        if on)
        return f"{flags or '-'}:{self.given}"


def draw(seed: int, *parts: object) -> float:
    """A reproducible uniform number in [0, 1) from the experiment seed and the parts of its key."""
    text = ":".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def make_problem(seed: int, question: str, gold: str, kind: str, worked_solution: str = "") -> Problem:
    """A problem from a task example; `worked_solution` (GSM8K's annotated steps) sets the arithmetic load."""
    if kind not in KINDS:
        raise ValueError(f"problem kind must be one of {KINDS}, got {kind!r}")
    u = min(max(draw(seed, "difficulty", question), 1e-12), 1 - 1e-12)
    if worked_solution.count("<<"):
        load = worked_solution.count("<<")
    else:
        load = max(1, len(_NUMBER.findall(question)) - 1)
    return Problem(question, gold, kind, statistics.NormalDist().inv_cdf(u), load,
                   tuple(_wrong_answers(question, gold, kind, WRONG_ANSWERS)))


def _wrong_answers(question: str, gold: str, kind: str, count: int) -> list[str]:
    """Plausible wrong answers, the recurring near miss first: nearby numbers, or realistic bugs."""
    if kind == "code":
        start = len(question) if gold.startswith(question) else 0
        return buggy_versions(gold, count, seed=gold, editable_from=start) or [unfinished_program(gold)]
    numbers = list(_NUMBER.finditer(gold))
    if len(gold) == 1 and gold.isalpha():  # a multiple-choice letter
        return [letter for letter in "ABCDE" if letter != gold.upper()][:count]
    if not numbers:
        return [f"{gold} + 1", f"2 {gold}", f"-{gold}", f"{gold}^2", f"1/{gold}"][:count]
    last = numbers[-1]
    value = float(last.group().replace(",", ""))
    offsets = [value + 1, value - 1, value * 2, value / 2 if value else 2, value + 10, value - 10, value * 10]
    texts = []
    for candidate in offsets:
        text = str(int(candidate)) if float(candidate).is_integer() else f"{candidate:.4g}"
        wrong = gold[:last.start()] + text + gold[last.end():]
        if wrong != gold and wrong not in texts:
            texts.append(wrong)
    # which nearby number recurs is a property of the problem
    turn = int(draw(0, "near-miss", question) * len(texts))
    return (texts[turn:] + texts[:turn])[:count]


def detect_features(request: ReplyRequest, problem: Problem) -> Features:
    """The strategy features of a request (module doc); the problem's own text never counts."""
    text = request.prompt_text.replace(problem.question, " ")
    given = given_answer(text, problem)
    if problem.kind == "code" and given.startswith(("gold", "wrong:")):  # a given program's own words do not count
        for line in reply_text(problem, given).splitlines():
            text = text.replace(line, " ") if line.strip() else text
    keys = [key.lower() for key in request.requested_keys()]
    reason = any(key in _REASON_KEYS for key in keys) or bool(_REASON.search(text))
    program = problem.kind == "numeric" and (bool(_PROGRAM.search(text))
                                             or any("code" in key or "program" in key for key in keys))
    asks = bool(_VERIFY.search(text) or _CORRECT.search(text))
    test_shown = problem.kind == "code" and bool(given) and bool(_TEST_SHOWN.search(text))
    return Features(reason=reason, program=program, verify=bool(given) and asks and not test_shown,
                    repair=test_shown, given=given)


def given_answer(text: str, problem: Problem) -> str:
    """Which answer the text proposes: 'gold', 'wrong:<i>' (a known wrong answer), 'other', or ''."""
    if problem.kind == "code":  # the question (signature, docstring) is cut out: look for a known body
        flat = _flat(text)
        for name, reply in (("gold", problem.gold), *((f"wrong:{i}", w) for i, w in enumerate(problem.wrong))):
            body = _flat(reply[len(problem.question):] if reply.startswith(problem.question) else reply)
            if body and body in flat:
                return name
        return "other" if "def " in text else ""
    matches = _GIVEN.findall(text)
    if not matches:
        return ""
    proposed = matches[-1].strip().rstrip(".\"'}$ ")
    if problem.kind == "numeric":
        numbers = _NUMBER.findall(proposed)
        if not numbers:
            return ""
        proposed = numbers[0].replace(",", "")
    if same_answer(proposed, problem.gold, problem.kind):
        return "gold"
    return next((f"wrong:{i}" for i, w in enumerate(problem.wrong) if same_answer(proposed, w, problem.kind)),
                f"other:{_flat(proposed)[:40]}")


def reply_text(problem: Problem, name: str) -> str:
    """The text of a known answer: 'gold' or 'wrong:<i>'."""
    return problem.gold if name == "gold" else problem.wrong[int(name.split(":", 1)[1])]


def same_answer(a: str, b: str, kind: str) -> bool:
    """Equal as numbers (numeric tasks) or as text with whitespace dropped."""
    if kind == "numeric":
        try:
            return math.isclose(float(a.replace(",", "")), float(b.replace(",", "")), rel_tol=1e-9, abs_tol=1e-9)
        except ValueError:
            return False
    return _flat(a) == _flat(b)


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def solve_probability(problem: Problem, features: Features, rates: Rates, greedy: bool = False) -> float:
    """The chance that a solving call (or a flagged answer's redraw) gives the right answer; `greedy`
    (temperature 0): that of the greedy decoder, p^k / (p^k + (1-p)^k) with k = greedy_sharpness."""
    logit = rates.base_logit - rates.difficulty_scale * problem.difficulty
    if features.reason:
        logit += rates.reason_bonus
    if features.program:
        logit += rates.program_logit - rates.base_logit
    elif problem.kind == "numeric":
        logit -= rates.arithmetic_penalty * max(0, problem.arithmetic_load - rates.free_steps)
    if greedy:
        logit *= rates.greedy_sharpness  # logit of p^k / (p^k + (1-p)^k)
    return 1.0 / (1.0 + math.exp(-logit))
