"""GSM-Plus (Li et al., 2024): GSM8K test problems rewritten by eight kinds of perturbation.

Release format (https://huggingface.co/datasets/qintongli/GSM-Plus, code at
https://github.com/qtli/GSM-Plus): JSON/JSONL rows with question, solution, answer (a number, or
"None"), perturbation_type, seed_question, seed_solution, seed_answer; `test` holds 10,552 rows and
`testmini` 2,400 of them.

Split: validate and test are cut 1:4 by a seeded shuffle from the test file (testmini where only it is
there); a perturbation-type filter (`subset`, e.g. "critical thinking,digit expansion") is applied after
the cut, so a problem's split never depends on the filter.

Scoring: numeric answers as GSM8K's (tasks/numeric.py: the last number, exact within float noise).
The "critical thinking" rewrites drop a premise the question needs, so their gold is "None"; the
release (`scripts/utils/extract_ans.py`, `extract_pred_ans_none`) counts a reply right when, lowercased
with commas removed, it contains one of its phrases saying the information is missing ("does not
provide enough information", "cannot determine", ..., or "none"): NONE_PHRASES below, its list in its
order. Its further fallback, which also counts a reply lacking its prompt's "####" answer marker as
"None", belongs to its prompt format, not to a workflow's answer, and is not followed.
"""

from __future__ import annotations

import pathlib

from w4s_jax.tasks.arithmetic_tasks import NumericTask, number_text
from w4s_jax.tasks.base import Example
from w4s_jax.tasks.loaders import Row, seeded_split
from w4s_jax.tasks.mmlu_pro import parse_subset
from w4s_jax.tasks.numeric import score_numeric
from w4s_jax.tasks.release_files import first_present, read_release

NONE_ANSWER = "None"
PERTURBATIONS = ("numerical substitution", "digit expansion", "integer-decimal-fraction conversion",
                 "adding operation", "reversing operation", "problem understanding", "distractor insertion",
                 "critical thinking")
TEST_FILES = ("test.jsonl", "gsmplus_test.jsonl", "test.json", "gsmplus_test.json",
              "testmini.jsonl", "gsmplus_testmini.jsonl")
NONE_PHRASES = (
    "does not provide enough information", "does not specify", "does not provide", "can't provide",
    "can not provide", "don't know", "do not know", "doesn't specify", "not specify", "not mention",
    "doesn't mention", "don't have enough information", "do not have enough", "not provide", "doesn't provide",
    "cannot calculate", "can't calculate", "can't determine", "cannot determine", "missing necessary information",
    "none",
)


def says_none(prediction: object) -> bool:
    """Whether a reply says the question cannot be answered, as the release decides it (module doc)."""
    if isinstance(prediction, bool):
        return False
    text = str(prediction).rstrip(".").replace(",", "").lower()
    return any(phrase in text for phrase in NONE_PHRASES)


class GSMPlus(NumericTask):
    name = "gsm_plus"
    description = ("GSM-Plus: grade-school math word problems rewritten to test robustness (numbers changed or "
                   "expanded, operations added or reversed, distractors inserted, questions rephrased). Some "
                   "rewrites drop a fact the question needs: then the answer is \"None\" (say the question "
                   "lacks the information). Otherwise the answer is a single number.")
    answer_type = 'a number (int or float), or "None" when the question lacks a needed fact'
    split_note = ("validate and test cut 1:4 by a seeded shuffle from the release's test file (10,552 rows; "
                  "testmini's 2,400 where only it is there); subset = perturbation types")
    data_layout = ("gsm_plus/test.jsonl (or gsmplus_test.jsonl, test.json; testmini.jsonl) from the GSM-Plus release "
                   "https://huggingface.co/datasets/qintongli/GSM-Plus (code: https://github.com/qtli/GSM-Plus)")

    def __init__(self, seed: int = 0, subset: str = "") -> None:
        super().__init__(seed)
        self.perturbations = parse_subset(subset, PERTURBATIONS, "GSM-Plus perturbation type")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = seeded_split(read_release(first_present(data_dir / "gsm_plus", TEST_FILES)), split, self.seed)
        if not self.perturbations:
            return rows
        return [row for row in rows if row.fields.get("perturbation_type") in self.perturbations]

    def to_example(self, row: Row) -> Example:
        perturbation = row.get("perturbation_type")
        raw = row.get("answer", (str, int, float))
        answer = NONE_ANSWER if str(raw).strip() == NONE_ANSWER else number_text(row, "answer")
        identifier = str(row.fields.get("id", row.location.rsplit("/", 1)[-1]))
        return Example(identifier, row.get("question"), answer,
                       {"location": row.location, "perturbation_type": perturbation,
                        "seed_question": row.fields.get("seed_question", "")})

    def score(self, prediction: object, example: Example) -> float:
        if example.answer == NONE_ANSWER:
            return 1.0 if says_none(prediction) else 0.0
        return score_numeric(prediction, example.answer)
