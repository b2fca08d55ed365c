"""Reading comprehension with F1: DROP (discrete reasoning over paragraphs) and HotpotQA (multi-hop)."""

from __future__ import annotations

import pathlib

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.base import Example, Task, aflow_files
from w4s_jax.tasks.f1 import hotpot_em_f1, score_drop
from w4s_jax.tasks.loaders import Row, read_jsonl, seeded_split


class DROP(Task):
    name = "drop"
    description = ("DROP: questions about a passage that need discrete reasoning (counting, sorting, adding, "
                   "subtracting, comparing dates). The answer is a number, a date or one or more short spans "
                   "of the passage; scored by token F1.")
    answer_type = "a short string (a number, a date, or a span; several spans as a list of strings)"
    worked_example = (
        "Task: Passage: The team scored 14 points in the first half and 10 in the second half. The visitors "
        "scored 21 points in total.\nQuestion: How many more points did the home team score than the visitors?\n"
        'Answer: {"answer": "3"}  (14 + 10 = 24, 24 - 21 = 3)'
    )
    split_note = ("validate (200) and test (800) from the AFlow split files; tfds:<dir> reads the TFDS build "
                  "(its dev split cut 1:4); score = F1")
    data_layout = aflow_files("drop", "validate", "test") + ", cut from the public release https://allenai.org/data/drop"
    tfds_name = "drop"
    tfds_split = "dev"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return read_jsonl(data_dir / "drop" / f"{split}.jsonl")

    def to_example(self, row: Row) -> Example:
        if "passage" in row.fields:  # the TFDS layout
            return self._tfds_example(row)
        context = row.get("context").rstrip()
        if context.endswith("Answer:"):
            context = context[: -len("Answer:")].rstrip()
        answers = [a.strip() for a in row.get("ref_text").split("|")]
        if not any(answers):
            raise DataError(f"{row.location}: field 'ref_text' is empty")
        return Example(str(row.fields.get("id", row.location)), context, answers[0],
                       {"location": row.location, "alternatives": answers})

    def _tfds_example(self, row: Row) -> Example:
        """TFDS rows: passage, question, answer and validated_answers (each a number, date or spans)."""
        context = f"Passage: {row.get('passage').strip()}\nQuestion: {row.get('question').strip()}"
        validated = row.fields.get("validated_answers", [])
        answers = [str(a).strip() for a in [row.get("answer"), *validated]]
        answers = [a for position, a in enumerate(answers) if a and a not in answers[:position]]
        if not answers:
            raise DataError(f"{row.location}: field 'answer' is empty")
        return Example(str(row.get("query_id")), context, answers[0], {"location": row.location, "alternatives": answers})

    def score(self, prediction: object, example: Example) -> float:
        return score_drop(prediction, example.meta.get("alternatives", [example.answer]))[1]

    def exact_match(self, prediction: object, example: Example) -> float:
        return score_drop(prediction, example.meta.get("alternatives", [example.answer]))[0]


class HotpotQA(Task):
    name = "hotpotqa"
    description = ("HotpotQA (distractor setting): multi-hop questions over ten Wikipedia paragraphs, two of "
                   "which hold the needed facts. The answer is a short span, or yes/no; scored by token F1.")
    answer_type = "a short string (an entity, a date, a number, or yes / no)"
    worked_example = (
        "Task: Paragraphs:\nRiver Lune: The River Lune flows through the town of Kirkby.\nKirkby: Kirkby is a "
        "market town founded in 1232.\nQuestion: In what year was the town on the River Lune founded?\n"
        'Answer: {"answer": "1232"}'
    )
    split_note = ("only the AFlow validation file (200 rows) is public here: it is split 1:4 with the seed, "
                  "validate = 40 rows, test = the other 160")

    data_layout = aflow_files("hotpotqa", "validate") + ", cut from the public release https://hotpotqa.github.io"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return seeded_split(read_jsonl(data_dir / "hotpotqa" / "validate.jsonl"), split, self.seed)

    def to_example(self, row: Row) -> Example:
        paragraphs = row.get("context", list)
        lines = ["Paragraphs:"]
        for index, paragraph in enumerate(paragraphs):
            if not (isinstance(paragraph, list) and len(paragraph) == 2 and isinstance(paragraph[1], list)):
                raise DataError(f"{row.location}: field 'context'[{index}] should be [title, [sentences]]")
            lines.append(f"{paragraph[0]}: {''.join(str(s) for s in paragraph[1]).strip()}")
        question = "\n".join(lines) + f"\n\nQuestion: {row.get('question')}"
        return Example(str(row.get("_id", (str, int))), question, row.get("answer"),
                       {"location": row.location, "type": row.fields.get("type", "")})

    def score(self, prediction: object, example: Example) -> float:
        return hotpot_em_f1(prediction, example.answer)[1]

    def exact_match(self, prediction: object, example: Example) -> float:
        return hotpot_em_f1(prediction, example.answer)[0]
