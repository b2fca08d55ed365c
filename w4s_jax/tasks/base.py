"""The `Task` seam: splits, a description and worked example for the prompt, and a scorer.

Tasks know nothing of the meta-agent: they turn benchmark files into `Example`s and score answers.
Code tasks do not score in-process; `check_program` returns a program (prediction + hidden tests)
that exits 0 iff the tests pass, and the sandbox runs it.
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib

import grain

from w4s_jax.tasks.loaders import DataError, Row, as_dataset, tfds_rows

SPLITS = ("validate", "test")


@dataclasses.dataclass(frozen=True)
class Example:
    """One benchmark item. `question` is the full text a workflow receives as `task`."""

    id: str
    question: str
    answer: str
    meta: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)


class Task(abc.ABC):
    """One benchmark. Subclasses set the class attributes and implement `rows` and `to_example`."""

    name: str = ""
    description: str = ""
    answer_type: str = ""
    worked_example: str = ""
    is_code: bool = False
    tfds_name: str = ""  # the set in the TFDS catalog, if it has one
    tfds_split: str = "test"  # its held-out split, cut 1:4 into validate and test
    split_note: str = "validate and test come from the files of the same names"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abc.abstractmethod
    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        """The raw rows of one split."""

    @abc.abstractmethod
    def to_example(self, row: Row) -> Example:
        """Parses one row (a DataError naming the row's location and field if it is malformed)."""

    def dataset(self, split: str, data_dir: str | pathlib.Path) -> grain.MapDataset:
        """The split as a grain MapDataset of Examples. `data_dir` is a directory laid out like
        shared/data, or `tfds:<dir>` to read a prepared TFDS build (tasks with a `tfds_name`)."""
        if split not in SPLITS:
            raise DataError(f"task {self.name!r}: unknown split {split!r}; expected one of {SPLITS}")
        if str(data_dir).startswith("tfds:"):
            if not self.tfds_name:
                raise DataError(f"task {self.name!r} has no TFDS source; point data_dir at a directory "
                                "laid out like shared/data")
            rows = tfds_rows(self.tfds_name, self.tfds_split, split, str(data_dir)[5:], self.seed)
            return as_dataset(rows, self.to_example)
        data_dir = pathlib.Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(f"{data_dir}: data directory not found (expected one folder per benchmark, "
                            "laid out like shared/data)")
        return as_dataset(self.rows(split, data_dir), self.to_example)

    def load(self, split: str, data_dir: str | pathlib.Path, limit: int = 0) -> list[Example]:
        """The first `limit` examples of the split (0 = all)."""
        dataset = self.dataset(split, data_dir)
        if limit:
            dataset = dataset[: min(limit, len(dataset))]
        return list(dataset)

    def score(self, prediction: object, example: Example) -> float:
        """1.0 for a correct answer, 0.0 otherwise (F1 tasks return a value in [0, 1])."""
        raise TypeError(f"task {self.name!r} is a code task: score it by running check_program() in the sandbox")

    def check_program(self, prediction: object, example: Example) -> str:
        """A Python program that exits 0 iff `prediction` passes the hidden tests (code tasks only)."""
        raise TypeError(f"task {self.name!r} is not a code task: use score()")
