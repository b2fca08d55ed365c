"""Tasks read through TFDS: real TFDS builds (array_record files written by the catalog's own
builders, from small local source files in the original formats; nothing is downloaded) read back
through `data_dir="tfds:<dir>"`, cut 1:4 into validate and test, and scored."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.text.drop.drop import Drop
from tensorflow_datasets.text.gsm8k.gsm8k import Gsm8k

from w4s_jax.tasks import get_task

GSM8K_ROWS = [{"question": f"Tom has {i} apples and buys {i + 2} more. How many apples does he have?",
               "answer": f"He has {i} + {i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2} apples.\n#### {2 * i + 2:,}"}
              for i in range(10)]
NO_DATE = {"day": "", "month": "", "year": ""}
DROP_SOURCE = {
    "nfl_1": {"passage": "The Bears scored 14 points in the first half and 10 in the second. The Lions scored 21.",
              "qa_pairs": [
                  {"question": "How many points did the Bears score?", "query_id": "q-points",
                   "answer": {"number": "24", "date": NO_DATE, "spans": []},
                   "validated_answers": [{"number": "24", "date": NO_DATE, "spans": []}]},
                  {"question": "Which team scored 21 points?", "query_id": "q-team",
                   "answer": {"number": "", "date": NO_DATE, "spans": ["the Lions"]},
                   "validated_answers": [{"number": "", "date": NO_DATE, "spans": ["Lions"]}]},
              ] + [{"question": f"Filler question {i}?", "query_id": f"q-fill{i}",
                    "answer": {"number": str(i), "date": NO_DATE, "spans": []}, "validated_answers": []}
                   for i in range(8)]},
}


def _prepare(builder_class: type, source: object, data_dir: epath.Path) -> None:
    """Runs the catalog builder with `download_and_extract` pointed at local source files."""
    builder = builder_class(data_dir=str(data_dir), file_format="array_record")
    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", lambda _, urls: source):
        builder.download_and_prepare()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> epath.Path:
    root = epath.Path(tmp_path_factory.mktemp("tfds"))
    sources = root / "sources"
    (sources / "drop_dataset").mkdir(parents=True)
    for name in ("train", "dev"):
        (sources / "drop_dataset" / f"drop_dataset_{name}.json").write_text(json.dumps(DROP_SOURCE))
    for name in ("train", "test"):
        (sources / f"gsm8k_{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in GSM8K_ROWS))
    _prepare(Gsm8k, {name: sources / f"gsm8k_{name}.jsonl" for name in ("train", "test")}, root / "data")
    _prepare(Drop, sources, root / "data")
    return root / "data"


def test_gsm8k_through_tfds_is_split_and_scored(tfds_dir):
    task = get_task("gsm8k")
    validate = task.load("validate", f"tfds:{tfds_dir}")
    test = task.load("test", f"tfds:{tfds_dir}")
    assert (len(validate), len(test)) == (2, 8)  # the test split of 10 rows, cut 1:4
    assert not {e.question for e in validate} & {e.question for e in test}
    by_question = {row["question"]: row for row in GSM8K_ROWS}
    for example in validate + test:
        gold = by_question[example.question]["answer"].rsplit("#### ", 1)[1].replace(",", "")
        assert example.answer == gold
        assert task.score(f"so the answer is {gold}", example) == 1.0
        assert task.score("so the answer is -1", example) == 0.0


def test_drop_through_tfds_reads_the_dev_split_with_all_gold_answers(tfds_dir):
    task = get_task("drop")
    examples = task.load("validate", f"tfds:{tfds_dir}") + task.load("test", f"tfds:{tfds_dir}")
    assert len(examples) == 10
    team = next(e for e in examples if e.id.startswith("q-team"))
    assert team.question.startswith("Passage: The Bears scored 14 points")
    assert team.question.endswith("Question: Which team scored 21 points?")
    assert team.answer == "the Lions" and team.meta["alternatives"] == ["the Lions", "Lions"]
    assert team.meta["location"].startswith("tfds:drop/dev[")
    assert task.score("Lions", team) == 1.0 and task.score("Bears", team) == 0.0
    points = next(e for e in examples if e.id.startswith("q-points"))
    assert task.score("24", points) == 1.0 and task.score("24.0", points) == 1.0
