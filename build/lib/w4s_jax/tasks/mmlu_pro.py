"""MMLU-Pro (TIGER-Lab): 10-option multiple choice over 14 categories, scored as its official evaluation.

Release format (https://huggingface.co/datasets/TIGER-Lab/MMLU-Pro, code at
https://github.com/TIGER-AI-Lab/MMLU-Pro): rows with question_id, question, options (up to 10),
answer (the letter), answer_index, cot_content, category, src; parquet files `test` (12,032 rows) and
`validation` (70 rows, the 5-shot CoT examples). JSON and JSONL files with the same fields are read too.

Split convention: the release's `validation` split is the 70 few-shot examples, too few to select a
workflow on, so, as the W4S/AFlow code does for single-file sets, validate and test are cut from the
release's `test` file by a seeded 1:4 shuffle (validate about 2,406, test about 9,626). A category
filter (`subset`, e.g. "physics,law") is applied after the cut, so a question's split never depends
on the filter.

Scoring (`evaluate_from_api.py` of the official code): the letter is the first match of
`answer is \\(?([A-J])\\)?`; else "Answer: X" (`.*[aA]nswer:\\s*([A-J])`: the last one on the first line
holding one); else the last standalone capital letter A-J of the whole reply. No letter scores 0 (the official API script counts it
wrong; only its local-model script guesses at random). "N/A" options are dropped first, as its
`preprocess` does.
"""

from __future__ import annotations

import pathlib
import re

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.loaders import Row, seeded_split
from w4s_jax.tasks.release_files import first_present, read_release

LETTERS = "ABCDEFGHIJ"
TEST_FILES = ("test.parquet", "data/test-00000-of-00001.parquet", "test.jsonl", "test.json")
CATEGORIES = ("biology", "business", "chemistry", "computer science", "economics", "engineering", "health",
              "history", "law", "math", "other", "philosophy", "physics", "psychology")

# The official patterns are `answer is \(?([A-J])\)?`, then `.*[aA]nswer:\s*([A-J])` (search), then
# `\b[A-J]\b(?!.*\b[A-J]\b)` (DOTALL). The last two backtrack quadratically on long replies, so they
# are computed in linear time with the same result: the second takes, on the first line holding a
# match, its last match (`.*` is greedy and stops at a newline; `\s*` may cross one); the third takes
# the last standalone letter.
_ANSWER_IS = re.compile(r"answer is \(?([A-J])\)?")
_ANSWER_COLON = re.compile(r"[aA]nswer:(?=\s*([A-J]))")
_LETTER = re.compile(r"\b[A-J]\b")


def extract_letter(prediction: object) -> str | None:
    """The chosen letter as the official evaluation extracts it (module doc), or None."""
    if prediction is None or isinstance(prediction, bool):
        return None
    text = str(prediction)
    match = _ANSWER_IS.search(text)
    if match:
        return match.group(1)
    first_line, letter = None, None
    for match in _ANSWER_COLON.finditer(text):
        line = text.count("\n", 0, match.start())
        if first_line is not None and line != first_line:
            break
        first_line, letter = line, match.group(1)
    if letter is not None:
        return letter
    letters = _LETTER.findall(text)
    return letters[-1] if letters else None


def format_prompt(category: str, question: str, options: list[str]) -> str:
    """The official zero-shot CoT prompt: header naming the category, the question, lettered options."""
    lines = [f"The following are multiple choice questions (with answers) about {category}. Think step by step "
             'and then finish your answer with "the answer is (X)" where X is the correct letter choice.',
             "", "Question:", question.strip(), "Options:"]
    lines += [f"{letter}. {option}" for letter, option in zip(LETTERS, options)]
    return "\n".join(lines)


def parse_subset(subset: str, known: tuple[str, ...], what: str) -> frozenset[str]:
    """The comma-separated filter values, each one of `known` (a ValueError naming the others)."""
    chosen = frozenset(part.strip() for part in subset.split(",") if part.strip())
    unknown = sorted(chosen - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return chosen


class MMLUPro(Task):
    name = "mmlu_pro"
    description = ("MMLU-Pro: hard multiple-choice questions over 14 subjects (law, physics, engineering, ...), "
                   "with up to ten options A to J that often need reasoning, not recall. The answer is the "
                   "letter of the correct option.")
    answer_type = "one letter, A to J (a text reply ending 'the answer is (X)' counts too)"
    worked_example = (
        "Task: The following are multiple choice questions (with answers) about physics. ...\n\nQuestion:\n"
        "A ball is dropped from rest. Ignoring air, how far does it fall in 2 s (g = 10 m/s^2)?\nOptions:\n"
        "A. 5 m\nB. 10 m\nC. 20 m\nD. 40 m\nE. 2 m\nF. 15 m\nG. 25 m\nH. 30 m\nI. 12 m\nJ. 8 m\n"
        'Answer: {"answer": "C"}  (d = g t^2 / 2 = 10 * 4 / 2 = 20 m)'
    )
    split_note = ("validate and test cut 1:4 by a seeded shuffle from the release's test file (12,032 rows); "
                  "its validation file holds only the 70 few-shot examples; subset = categories")
    data_layout = ("mmlu_pro/test.parquet (or data/test-00000-of-00001.parquet, test.jsonl, test.json) from the "
                   "TIGER-Lab release https://huggingface.co/datasets/TIGER-Lab/MMLU-Pro")

    def __init__(self, seed: int = 0, subset: str = "") -> None:
        super().__init__(seed)
        self.categories = parse_subset(subset, CATEGORIES, "MMLU-Pro category")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = seeded_split(read_release(first_present(data_dir / "mmlu_pro", TEST_FILES)), split, self.seed)
        if not self.categories:
            return rows
        return [row for row in rows if row.fields.get("category") in self.categories]

    def to_example(self, row: Row) -> Example:
        options = [str(option) for option in row.get("options", list) if str(option) != "N/A"]
        if not 2 <= len(options) <= len(LETTERS):
            raise DataError(f"{row.location}: field 'options' should hold 2 to 10 options besides N/A, "
                            f"got {len(options)}")
        letter = row.get("answer").strip()
        if letter not in LETTERS[: len(options)]:
            raise DataError(f"{row.location}: field 'answer' should be a letter A-{LETTERS[len(options) - 1]}, "
                            f"got {letter!r}")
        category = row.get("category")
        identifier = str(row.fields.get("question_id", row.location))
        return Example(identifier, format_prompt(category, row.get("question"), options), letter,
                       {"location": row.location, "options": options, "category": category,
                        "src": row.fields.get("src", "")})

    def score(self, prediction: object, example: Example) -> float:
        return 1.0 if extract_letter(prediction) == example.answer else 0.0
