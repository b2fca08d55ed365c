"""MATH (Hendrycks et al.), the level-5 subset used by AFlow: answers compared by math_equiv."""

from __future__ import annotations

import pathlib

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.base import Example, Task, aflow_files
from w4s_jax.tasks.loaders import Row, read_jsonl
from w4s_jax.tasks.math_equiv import last_boxed, score_math


class MATH(Task):
    name = "math"
    description = ("MATH: competition mathematics problems (level 5: prealgebra, number theory, counting and "
                   "probability, precalculus). The answer is a LaTeX expression (a number, fraction, radical, "
                   "interval, ...); put the final answer in \\boxed{} or return just the expression.")
    answer_type = "a LaTeX math expression; the last \\boxed{} of a text answer is taken"
    worked_example = (
        "Task: What is the sum of all positive divisors of 12 that are also odd?\n"
        'Answer: {"answer": "\\\\boxed{4}"}  (the odd divisors of 12 are 1 and 3)'
    )
    split_note = "validate (119) and test (486) from the AFlow split files"
    data_layout = aflow_files("math", "validate", "test") + ", cut from the public release https://github.com/hendrycks/math"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return read_jsonl(data_dir / "math" / f"{split}.jsonl")

    def to_example(self, row: Row) -> Example:
        solution = row.get("solution")
        answer = last_boxed(solution)
        if answer is None:
            raise DataError(f"{row.location}: field 'solution' has no \\boxed{{}} answer")
        identifier = row.location.rsplit("/", 1)[-1]
        return Example(identifier, row.get("problem"), answer,
                       {"location": row.location, "type": row.fields.get("type", ""),
                        "level": row.fields.get("level", "")})

    def score(self, prediction: object, example: Example) -> float:
        return score_math(prediction, example.answer)
