"""GPQA diamond: graduate-level multiple choice; options shuffled with a fixed seed per question.

The questions must not be republished: nothing here (docs, fixtures, worked example) quotes a row.
"""

from __future__ import annotations

import pathlib

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.loaders import Row, read_csv, seeded_split
from w4s_jax.tasks.multiple_choice import format_question, score_choice, shuffled_options


class GPQA(Task):
    name = "gpqa"
    description = ("GPQA diamond: hard graduate-level multiple-choice questions in biology, physics and "
                   "chemistry, with four options (A) to (D). The answer is the letter of the correct option.")
    answer_type = "one letter, A, B, C or D"
    worked_example = (
        "Task: Which particle carries a negative elementary charge?\n\n(A) proton\n(B) neutron\n(C) electron\n"
        "(D) photon\n"
        'Answer: {"answer": "C"}'
    )
    split_note = "one CSV (198 rows), seeded 1:4 split: validate 40, test 158; options shuffled per seed"
    data_layout = ("gpqa/gpqa_diamond.csv from the password-protected release at https://github.com/idavidrein/gpqa "
                   "(its authors ask that the questions are not republished)")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return seeded_split(read_csv(data_dir / "gpqa" / "gpqa_diamond.csv"), split, self.seed)

    def to_example(self, row: Row) -> Example:
        incorrect = [row.get(f"Incorrect Answer {i}").strip() for i in (1, 2, 3)]
        correct = row.get("Correct Answer").strip()
        question = row.get("Question").strip()
        if not question or not correct or not all(incorrect):
            raise DataError(f"{row.location}: empty question or option")
        record = row.fields.get("Record ID") or row.location
        options, letter = shuffled_options(correct, incorrect, self.seed, str(record))
        return Example(str(record), format_question(question, options), letter,
                       {"location": row.location, "options": options,
                        "domain": row.fields.get("High-level domain", "")})

    def score(self, prediction: object, example: Example) -> float:
        return score_choice(prediction, example.answer, example.meta["options"])
