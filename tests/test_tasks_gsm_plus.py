"""GSM-Plus: the release's JSON/JSONL rows, the strict numeric scorer, the release's rule for the
"None" answers of critical-thinking rewrites, the perturbation filter, and `w4s-jax eval` end to end."""

from __future__ import annotations

import pytest
from release_fixtures import GSM_PLUS_TYPES, run_eval, write_gsm_plus

from w4s_jax.tasks import DataError, get_task
from w4s_jax.tasks.base import Example
from w4s_jax.tasks.gsm_plus import says_none

NONE_GOLD = Example("x", "Tom has some apples and eats 3. How many are left?", "None")
NUMBER_GOLD = Example("y", "Tom has 12 apples and eats 3. How many are left?", "9")


@pytest.mark.parametrize(("reply", "right"), [
    ("The question does not provide enough information.", True),
    ("We cannot determine how many apples Tom had.", True),
    ("I don't know the starting count", True),
    ("The problem doesn't specify, so: None", True),
    ("None", True),
    (None, True),  # a null answer is "None", as the release reads it
    ("NONE.", True),  # lowercased first
    ("The answer is 7", False),
    ("9", False),
    ("It can be determined: 9", False),
    (False, False),
])
def test_critical_thinking_items_are_right_when_the_reply_says_the_information_is_missing(reply, right):
    task = get_task("gsm_plus")
    assert says_none(reply) is right or isinstance(reply, bool)
    assert task.score(reply, NONE_GOLD) == (1.0 if right else 0.0)


@pytest.mark.parametrize(("reply", "score"), [
    ("9", 1.0), (9, 1.0), (9.0, 1.0), ("Tom has 9 apples left.", 1.0), ("\\boxed{9}", 1.0),
    ("9.5", 0.0), ("None", 0.0), ("cannot determine", 0.0), ("8.9999", 0.0), (8.9999999999, 1.0),
])
def test_numeric_items_are_scored_strictly_as_gsm8k(reply, score):
    assert get_task("gsm_plus").score(reply, NUMBER_GOLD) == score


@pytest.mark.parametrize("name", ["test.jsonl", "gsmplus_test.json", "testmini.jsonl"])
def test_release_files_load_with_their_types_and_none_answers(name, tmp_path):
    write_gsm_plus(tmp_path, name)
    task = get_task("gsm_plus")
    examples = task.load("validate", tmp_path) + task.load("test", tmp_path)
    assert len(examples) == 16 and len({e.id for e in examples}) == 16
    assert {e.meta["perturbation_type"] for e in examples} == set(GSM_PLUS_TYPES)
    for example in examples:
        critical = example.meta["perturbation_type"] == "critical thinking"
        assert (example.answer == "None") == critical
        assert example.meta["seed_question"].startswith("Tom has ")
        assert task.score(task.gold_reply(example), example) == 1.0


def test_perturbation_filter_applies_after_the_seeded_split(tmp_path):
    write_gsm_plus(tmp_path)
    everything = get_task("gsm_plus").load("test", tmp_path)
    critical = get_task("gsm_plus", 0, "critical thinking").load("test", tmp_path)
    assert critical and [e.id for e in critical] == [
        e.id for e in everything if e.meta["perturbation_type"] == "critical thinking"]
    with pytest.raises(ValueError, match="unknown GSM-Plus perturbation type 'typo'"):
        get_task("gsm_plus", 0, "typo")


def test_a_non_numeric_answer_names_its_row(tmp_path):
    path = write_gsm_plus(tmp_path)
    path.write_text(path.read_text().replace('"answer": "11"', '"answer": "eleven"'))
    with pytest.raises(DataError, match=r"test.jsonl:5: field 'answer' should be a number, got 'eleven'"):
        for split in ("validate", "test"):  # row 5 (answer 11) is in one of them
            get_task("gsm_plus").load(split, tmp_path)


def test_eval_end_to_end_on_the_fixture(tmp_path):
    write_gsm_plus(tmp_path / "data")
    examples = get_task("gsm_plus").load("test", tmp_path / "data")
    table = {e.question: ("The question does not provide enough information." if e.answer == "None"
                          else f"{e.answer}") for e in examples}
    done, report = run_eval(tmp_path, "gsm_plus", tmp_path / "data", "cot", table)
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["num_samples"] == len(examples) == 13 and report["score"] == 1.0
