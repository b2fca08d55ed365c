"""Math word problems with a numeric answer: GSM8K, GSM-Hard, SVAMP and MGSM (11 languages)."""

from __future__ import annotations

import pathlib

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.base import Example, Task, aflow_files
from w4s_jax.tasks.loaders import Row, read_json_array, read_jsonl, read_tsv, seeded_split
from w4s_jax.tasks.numeric import parse_number, score_numeric

# GSM8K pools that ship inside the package, all cut from GSM8K's train split
# (tasks/package_data/README.md: origin, line ranges and license).
PACKAGE_DATA = pathlib.Path(__file__).resolve().parent / "package_data"
W4S_JAX_PACKAGE = "w4s-jax"

NUMERIC_ANSWER = "a number (int or float); the last number of a text answer is taken"

WORD_PROBLEM_EXAMPLE = (
    "Task: A baker makes 24 rolls in the morning and twice as many in the afternoon. She sells all but "
    "7 of them. How many rolls does she sell?\n"
    'Answer: {"answer": 65}  (24 + 48 = 72 rolls made, 72 - 7 = 65 sold)'
)


def number_text(row: Row, field: str) -> str:
    """A numeric field (number or numeric string) as a canonical string, or a DataError."""
    value = row.get(field, (int, float, str))
    number = float(value) if isinstance(value, int | float) else parse_number(value)
    if number is None:
        raise DataError(f"{row.location}: field '{field}' should be a number, got {value!r}")
    return str(int(number)) if float(number).is_integer() else repr(float(number))


class NumericTask(Task):
    """Scores the last number of the prediction against the gold number."""

    answer_type = NUMERIC_ANSWER
    worked_example = WORD_PROBLEM_EXAMPLE

    def score(self, prediction: object, example: Example) -> float:
        return score_numeric(prediction, example.answer)


class GSM8K(NumericTask):
    name = "gsm8k"
    description = ("GSM8K: grade-school math word problems that take 2 to 8 steps of arithmetic. "
                   "The answer is a single number.")
    split_note = ("validate (264) and test (1055) from the AFlow split files; tfds:<dir> reads the TFDS build; "
                  "package:w4s-jax has train (80), validate (50) and test (200) pools, all from GSM8K's "
                  "train split")
    data_layout = (aflow_files("gsm8k", "validate", "test")
                   + ", cut from the public release https://github.com/openai/grade-school-math")

    tfds_name = "gsm8k"
    package_source = W4S_JAX_PACKAGE
    package_contents = ("train, validate and test pools of 80, 50 and 200 problems that w4s-jax ships, "
                        "all from GSM8K's train split")
    package_splits = ("train", "validate", "test")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return read_jsonl(data_dir / "gsm8k" / f"{split}.jsonl")

    def package_rows(self, package: str, split: str) -> list[Row]:
        """One of the pools w4s-jax ships (`package_splits`; `dataset` has checked `split`): disjoint
        problems of GSM8K's train split, so nothing scored there is a GSM8K or AFlow test question."""
        if package != self.package_source:
            return super().package_rows(package, split)
        return read_jsonl(PACKAGE_DATA / f"gsm8k_{split}.jsonl")

    def to_example(self, row: Row) -> Example:
        identifier = row.fields.get("id", row.location)
        answer_field = "short_answer" if "short_answer" in row.fields else "answer"
        return Example(str(identifier), row.get("question"), number_text(row, answer_field),
                       {"location": row.location})


class GSMHard(NumericTask):
    name = "gsm_hard"
    description = ("GSM-Hard: GSM8K problems with the numbers replaced by large or awkward values, so "
                   "mental arithmetic fails; exact computation matters. The answer is a single number.")
    split_note = "one file (1319 rows), seeded 1:4 split: validate 264, test 1055"
    data_layout = ("gsm_hard/gsmhardv2.jsonl (fields input, code, target) from the PAL release: "
                   "https://github.com/reasoning-machines/pal, datasets/gsmhardv2.jsonl")

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return seeded_split(read_jsonl(data_dir / "gsm_hard" / "gsmhardv2.jsonl"), split, self.seed)

    def to_example(self, row: Row) -> Example:
        return Example(row.location.rsplit("/", 1)[-1], row.get("input"), number_text(row, "target"),
                       {"location": row.location})


class SVAMP(NumericTask):
    name = "svamp"
    description = ("SVAMP: short arithmetic word problems with small variations that test whether the "
                   "solver reads the question. The answer is a single number.")
    split_note = "one file (1000 rows), seeded 1:4 split: validate 200, test 800"
    data_layout = "svamp/SVAMP.json from the SVAMP release: https://github.com/arkilpatel/SVAMP"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        return seeded_split(read_json_array(data_dir / "svamp" / "SVAMP.json"), split, self.seed)

    def to_example(self, row: Row) -> Example:
        body, question = row.get("Body").strip(), row.get("Question").strip()
        text = f"{body}{'' if body.endswith('.') else '.'} {question}" if body else question
        return Example(str(row.get("ID")), text, number_text(row, "Answer"), {"location": row.location})


MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")


class MGSM(NumericTask):
    """MGSM: all languages together, or one (`mgsm_de`); each language file is split 1:4 on its own."""

    name = "mgsm"
    description = ("MGSM: grade-school math word problems translated into 10 languages besides English "
                   "(Bengali, German, Spanish, French, Japanese, Russian, Swahili, Telugu, Thai, Chinese). "
                   "The answer is a single number.")
    split_note = "one TSV per language (250 rows), seeded 1:4 split per language: validate 50, test 200 each"
    data_layout = ("mgsm/mgsm_XX.tsv for each language XX (question TAB answer, no header) from the MGSM release: "
                   "https://github.com/google-research/url-nlp, folder mgsm")

    def __init__(self, seed: int = 0, languages: tuple[str, ...] = MGSM_LANGUAGES) -> None:
        super().__init__(seed)
        self.languages = languages
        if len(languages) == 1:
            self.name = f"mgsm_{languages[0]}"

    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        rows = []
        for language in self.languages:
            language_rows = read_tsv(data_dir / "mgsm" / f"mgsm_{language}.tsv", ("question", "answer"))
            rows += seeded_split(language_rows, split, self.seed)
        return rows

    def to_example(self, row: Row) -> Example:
        language = row.location.rsplit("mgsm_", 1)[-1].split(".", 1)[0]
        identifier = f"mgsm_{language}:{row.location.rsplit(':', 1)[-1]}"
        return Example(identifier, row.get("question"), number_text(row, "answer"),
                       {"location": row.location, "language": language})
