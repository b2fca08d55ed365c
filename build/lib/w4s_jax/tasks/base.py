"""The `Task` seam: splits, a description and worked example for the prompt, and a scorer.

Tasks know nothing of the meta-agent: they turn benchmark files into `Example`s and score answers.
Code tasks do not score in-process: `run_hidden_tests` (tasks/code_tasks.py) runs the candidate and
the hidden tests in separate sandbox workers and decides the verdict in the parent.
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib

import grain

from w4s_jax.data_errors import DataError, MissingData
from w4s_jax.tasks.loaders import Row, as_dataset, tfds_rows

SPLITS = ("validate", "test")
TFDS_PREFIX = "tfds:"
PACKAGE_PREFIX = "package:"


def aflow_files(folder: str, *parts: str) -> str:
    """The files of a benchmark split by AFlow, as a data directory holds them and where to get them."""
    files = [f"{folder}/{part}.jsonl" for part in parts]
    ours = files[0] if len(files) == 1 else ", ".join(files[:-1]) + f" and {files[-1]}"
    theirs = ", ".join(f"{folder}_{part}.jsonl" for part in parts)
    return (f"{ours} (the AFlow release's {theirs}: https://github.com/FoundationAgents/AFlow, "
            "`python data/download_data.py`)")


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
    package_source: str = ""  # an installed package that ships the benchmark (`data_dir=package:NAME`)
    package_contents: str = ""  # what that package ships, for the ways to get the data
    package_splits: tuple[str, ...] = SPLITS  # the splits that package ships (it may add a train pool)
    data_layout: str = ""  # the files a data directory holds for this task, and where they come from
    split_note: str = "validate and test come from the files of the same names"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abc.abstractmethod
    def rows(self, split: str, data_dir: pathlib.Path) -> list[Row]:
        """The raw rows of one split."""

    @abc.abstractmethod
    def to_example(self, row: Row) -> Example:
        """Parses one row (a DataError naming the row's location and field if it is malformed)."""

    def package_rows(self, package: str, split: str) -> list[Row]:
        """The raw rows of one split as shipped by an installed package; tasks with a `package_source`
        override this for it."""
        raise MissingData(f"{PACKAGE_PREFIX}{package}", f"no installed package ships {self.name}")

    def dataset(self, split: str, data_dir: str | pathlib.Path) -> grain.MapDataset:
        """The split as a grain MapDataset of Examples. `data_dir` is a directory laid out like
        shared/data, `tfds:<dir>` to read a prepared TFDS build (tasks with a `tfds_name`), or
        `package:<name>` for the copy an installed package ships (tasks with a `package_source`).

        With no data there, MissingData names this task, the path tried and the ways to get the data.
        """
        location = str(data_dir)
        splits = self.splits_at(location)
        if split not in splits:
            elsewhere = (f" ({PACKAGE_PREFIX}{self.package_source} ships a {split} split)"
                         if self.package_source and split in self.package_splits else "")
            raise DataError(f"task {self.name!r}: unknown split {split!r} at {location}; "
                            f"it has {', '.join(splits)}{elsewhere}")
        try:
            if location.startswith(TFDS_PREFIX):
                if not self.tfds_name:
                    raise MissingData(location, f"the TFDS catalog has no {self.name}")
                rows = tfds_rows(self.tfds_name, self.tfds_split, split, location[len(TFDS_PREFIX):], self.seed)
            elif location.startswith(PACKAGE_PREFIX):
                rows = self.package_rows(location[len(PACKAGE_PREFIX):], split)
            else:
                rows = self.rows(split, pathlib.Path(location))
        except MissingData as error:
            raise MissingData(error.tried, error.detail, self.name, self.ways_to_get_data()) from None
        return as_dataset(rows, self.to_example)

    def splits_at(self, location: str) -> tuple[str, ...]:
        """The splits a data location serves: validate and test everywhere, and at the package that
        ships this task the splits it ships (a pool to train on is never cut from a test split)."""
        if self.package_source and location == f"{PACKAGE_PREFIX}{self.package_source}":
            return self.package_splits
        return SPLITS

    def ways_to_get_data(self) -> list[str]:
        """Every data location that serves this task, `{flag}` standing for the option that sets it."""
        ways = [f"{{flag}}=DIR, a folder holding {self.data_layout}"]
        if self.tfds_name:
            ways.append(f"{{flag}}={TFDS_PREFIX}DIR after `tfds build {self.tfds_name} --data_dir DIR` (the TFDS "
                        f"catalog's {self.tfds_name}; its {self.tfds_split} split is cut 1:4)")
        if self.package_source:
            ways.append(f"{{flag}}={PACKAGE_PREFIX}{self.package_source} ({self.package_contents})")
        return ways

    def load(self, split: str, data_dir: str | pathlib.Path, limit: int = 0) -> list[Example]:
        """The first `limit` examples of the split (0 = all)."""
        dataset = self.dataset(split, data_dir)
        if limit:
            dataset = dataset[: min(limit, len(dataset))]
        return list(dataset)

    def gold_reply(self, example: Example) -> str:
        """What an executor that knows the solution replies: the gold answer (code tasks: a program)."""
        return str(example.answer)

    def score(self, prediction: object, example: Example) -> float:
        """1.0 for a correct answer, 0.0 otherwise (F1 tasks return a value in [0, 1])."""
        raise TypeError(f"task {self.name!r} is a code task: score it with run_hidden_tests() and a sandbox")

    async def run_hidden_tests(self, prediction: object, example: Example, run_code, timeout_s: float):
        """pass@1 on the hidden tests (code tasks only: tasks/code_tasks.py)."""
        raise TypeError(f"task {self.name!r} is not a code task: use score()")
