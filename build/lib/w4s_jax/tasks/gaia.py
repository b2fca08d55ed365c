"""GAIA (Mialon et al., 2023): questions for assistants that need reasoning, files and the web; the answer
is a short string, number or list, scored by GAIA's quasi-exact match.

Release layout (https://huggingface.co/datasets/gaia-benchmark/GAIA, gated): `2023/validation/
metadata.jsonl`, rows with task_id, Question, Level (1-3), "Final answer", file_name, and the attached
files beside it. The release's test split has no public answers (its "Final answer" is "?"; it is scored
only by the leaderboard), so it is refused: no score is made up for it.

Split: validate and test are cut 1:4 by a seeded shuffle from the 165 validation rows; a level filter
(`subset`, e.g. "1,2") is applied after the cut.

Attachments: an example's attached file (meta "attachment", inside the release folder) reaches a
workflow only as text through `agent.read_attachment()`: the parent reads it, bounded in size, and
sends the text over the channel (sandbox/attachments.py); the workflow's worker never opens the path.
`agent.web_search(query)` is answered by the parent from `search_url` (w4s/web_search.py) where one is
configured, else with a WebSearchUnavailable error the workflow can catch.

Scoring follows `question_scorer` of the GAIA leaderboard (`scorer.py` of the gaia-benchmark
leaderboard space), rule for rule:
- a gold that float() reads is a number: the prediction with "$", "%" and "," removed must be a float
  equal to it (one that does not parse is never equal);
- a gold holding "," or ";" is a list: both are split on [,;], must have the same length, and are
  compared element by element, numbers as above, strings after removing whitespace and lowercasing
  (punctuation kept);
- any other gold is a string: both lose all whitespace and all ASCII punctuation and are lowercased.
A prediction of None is the string "None", as there.
"""

from __future__ import annotations

import pathlib
import re
import string

from w4s_jax.data_errors import DataError, MissingData
from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.loaders import Row, read_jsonl, seeded_split
from w4s_jax.tasks.mmlu_pro import parse_subset

LEVELS = ("1", "2", "3")
RELEASE_FOLDER = ("gaia", "2023")
NO_PUBLIC_ANSWER = "?"
_LIST_SEPARATORS = re.compile("[,;]")


def normalize_number_str(text: str) -> float:
    """The number in `text` after removing "$", "%" and ","; inf when it is not one (never equal)."""
    for char in ("$", "%", ","):
        text = text.replace(char, "")
    try:
        return float(text)
    except ValueError:
        return float("inf")


def normalize_str(text: str, remove_punct: bool = True) -> str:
    """`text` without whitespace, lowercased, and without ASCII punctuation unless `remove_punct` is False."""
    no_spaces = re.sub(r"\s", "", text).lower()
    return no_spaces.translate(str.maketrans("", "", string.punctuation)) if remove_punct else no_spaces


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def question_scorer(model_answer: object, ground_truth: str) -> bool:
    """GAIA's quasi-exact match of one answer (module doc)."""
    answer = "None" if model_answer is None else str(model_answer)
    if _is_float(ground_truth):
        return normalize_number_str(answer) == float(ground_truth)
    if any(char in ground_truth for char in ",;"):
        gold_items, answer_items = _LIST_SEPARATORS.split(ground_truth), _LIST_SEPARATORS.split(answer)
        if len(gold_items) != len(answer_items):
            return False
        return all(
            normalize_number_str(item) == float(gold) if _is_float(gold)
            else normalize_str(item, remove_punct=False) == normalize_str(gold, remove_punct=False)
            for item, gold in zip(answer_items, gold_items)
        )
    return normalize_str(answer) == normalize_str(ground_truth)


class GAIA(Task):
    name = "gaia"
    description = ("GAIA: questions for a general assistant that need several steps of reasoning, reading an "
                   "attached file (spreadsheets, documents, code) and often looking things up. The answer is "
                   "a short string, a number or a comma-separated list, scored by exact match after "
                   "normalisation: give only the answer, no units or words unless asked. "
                   "agent.read_attachment() returns the attached file's text; agent.web_search(query) searches "
                   "where a search backend is configured (a catchable error otherwise).")
    answer_type = "a short string, a number (no units, no thousands separators) or a comma-separated list"
    worked_example = (
        "Task: How many of the planets of the Solar System have no moons? Give the number only.\n"
        'Answer: {"answer": "2"}  (Mercury and Venus)'
    )
    split_note = ("validate and test cut 1:4 by a seeded shuffle from the release's validation split (165 rows); "
                  "its test split has no public answers and is refused; subset = levels 1, 2, 3")
    data_layout = ("gaia/2023/validation/metadata.jsonl and its attached files from the GAIA release "
                   "https://huggingface.co/datasets/gaia-benchmark/GAIA (gated: accept its terms, then download)")

    def __init__(self, seed: int = 0, subset: str = "") -> None:
        super().__init__(seed)
        self.levels = parse_subset(subset, LEVELS, "GAIA level")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        release = data_dir.joinpath(*RELEASE_FOLDER)
        metadata = release / "validation" / "metadata.jsonl"
        if not metadata.is_file() and (release / "test" / "metadata.jsonl").is_file():
            raise MissingData(str(metadata), "only GAIA's test split is there, and it has no public answers "
                                             "(scored only by the GAIA leaderboard), so it cannot be scored here")
        rows = seeded_split(read_jsonl(metadata), split, self.seed)
        if not self.levels:
            return rows
        return [row for row in rows if str(row.fields.get("Level", "")).strip() in self.levels]

    def to_example(self, row: Row) -> Example:
        answer = str(row.get("Final answer", (str, int, float))).strip()
        if answer == NO_PUBLIC_ANSWER:
            raise DataError(f"{row.location}: 'Final answer' is '?': this is GAIA's test split, whose answers are "
                            "not public (only the GAIA leaderboard scores it); w4s-jax scores GAIA on its "
                            "validation split only")
        question = row.get("Question").strip()
        level = str(row.get("Level", (str, int))).strip()
        file_name = str(row.fields.get("file_name") or "").strip()
        meta = {"location": row.location, "level": level}
        if file_name:
            meta["attachment"] = str(self._attachment(row, file_name))
            question += (f"\n\nAttached file: {file_name} (its text: agent.read_attachment())")
        return Example(str(row.get("task_id")), question, answer, meta)

    def _attachment(self, row: Row, file_name: str) -> pathlib.Path:
        """The attached file's path, which must lie in the metadata file's folder."""
        folder = pathlib.Path(row.location.rsplit(":", 1)[0]).parent.resolve()
        path = (folder / file_name).resolve()
        if not path.is_relative_to(folder) or path == folder:
            raise DataError(f"{row.location}: field 'file_name' {file_name!r} must name a file in {folder}")
        return path

    def score(self, prediction: object, example: Example) -> float:
        return 1.0 if question_scorer(prediction, example.answer) else 0.0
