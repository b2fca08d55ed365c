"""Loaders on the real benchmark files (counts per split as in the data README) and bad input."""

from __future__ import annotations

import json

import grain
import pytest

from w4s_jax.tasks import DataError, MissingData, get_task, known_tasks

EXPECTED_COUNTS = {
    "humaneval": (33, 131),
    "mbpp": (86, 341),
    "gsm8k": (264, 1055),
    "gsm_hard": (264, 1055),
    "math": (119, 486),
    "mgsm": (550, 2200),
    "mgsm_sw": (50, 200),
    "drop": (200, 800),
    "svamp": (200, 800),
    "gpqa": (40, 158),
    "hotpotqa": (40, 160),
}
PAPER_TASKS = ["humaneval", "mbpp", "gsm8k", "gsm_hard", "math", "mgsm", "drop", "svamp", "gpqa", "hotpotqa"]


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_split_counts_and_disjointness(shared_data_dir, name):
    task = get_task(name)
    validate = task.load("validate", shared_data_dir)
    test = task.load("test", shared_data_dir)
    assert (len(validate), len(test)) == EXPECTED_COUNTS[name]
    assert not {e.id for e in validate} & {e.id for e in test}
    assert len({e.id for e in validate + test}) == len(validate) + len(test)
    assert all(e.question.strip() and str(e.answer).strip() for e in validate + test)
    assert task.description and task.answer_type and task.worked_example and task.split_note
    test_questions = {e.question for e in test}
    assert task.worked_example not in test_questions
    assert not any(e.question in task.worked_example for e in test if len(e.question) > 40)


def test_every_paper_task_is_registered():
    assert set(PAPER_TASKS) <= set(known_tasks())


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown task 'gsm9k'; known tasks: .*gsm8k.*humaneval"):
        get_task("gsm9k")


def test_seeded_splits_are_reproducible_and_depend_on_the_seed(shared_data_dir):
    first = [e.id for e in get_task("svamp", seed=0).load("validate", shared_data_dir)]
    again = [e.id for e in get_task("svamp", seed=0).load("validate", shared_data_dir)]
    other = [e.id for e in get_task("svamp", seed=1).load("validate", shared_data_dir)]
    assert first == again and first != other and len(other) == 200


def test_limit_and_grain_dataset(shared_data_dir):
    task = get_task("gsm8k")
    assert [e.id for e in task.load("validate", shared_data_dir, limit=5)] == \
        [e.id for e in task.load("validate", shared_data_dir)[:5]]
    dataset = task.dataset("test", shared_data_dir)
    assert isinstance(dataset, grain.MapDataset) and len(dataset) == 1055
    assert dataset[3].id == task.load("test", shared_data_dir)[3].id


def test_question_shapes(shared_data_dir):
    gpqa = get_task("gpqa").load("validate", shared_data_dir, limit=5)
    for item in gpqa:  # never print or copy GPQA text: only structural checks
        assert all(f"\n({letter}) " in item.question for letter in "ABCD")
        assert item.meta["options"][ord(item.answer) - ord("A")]
    drop = get_task("drop").load("validate", shared_data_dir, limit=3)
    assert all(e.question.startswith("Passage:") and "\nQuestion:" in e.question for e in drop)
    assert all(not e.question.endswith("Answer:") for e in drop)
    hotpot = get_task("hotpotqa").load("validate", shared_data_dir, limit=3)
    assert all(e.question.startswith("Paragraphs:") and "\n\nQuestion:" in e.question for e in hotpot)
    humaneval = get_task("humaneval").load("validate", shared_data_dir, limit=3)
    assert all(f"def {e.meta['entry_point']}(" in e.question for e in humaneval)
    math = get_task("math").load("validate", shared_data_dir, limit=3)
    assert all("\\boxed" not in e.answer for e in math)


def test_gpqa_correct_option_is_the_answer_letter(shared_data_dir):
    import csv

    with open(shared_data_dir / "gpqa" / "gpqa_diamond.csv", encoding="utf-8", newline="") as handle:
        rows = {r["Record ID"]: r for r in csv.DictReader(handle)}
    for item in get_task("gpqa").load("test", shared_data_dir):
        assert item.meta["options"][ord(item.answer) - ord("A")] == rows[item.id]["Correct Answer"].strip()


def write_task_dir(tmp_path, lines: list[str]):
    folder = tmp_path / "gsm8k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "validate.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_malformed_json_row_names_file_and_line(tmp_path):
    data_dir = write_task_dir(tmp_path, [json.dumps({"question": "q", "answer": "1"}), "{not json"])
    with pytest.raises(DataError, match=r"gsm8k/validate\.jsonl:2: invalid JSON"):
        get_task("gsm8k").load("validate", data_dir)


def test_missing_field_names_file_line_and_field(tmp_path):
    data_dir = write_task_dir(tmp_path, [json.dumps({"question": "q", "answer": "1"}), json.dumps({"question": "q"})])
    with pytest.raises(DataError, match=r"validate\.jsonl:2: missing field 'answer'"):
        get_task("gsm8k").load("validate", data_dir)


def test_wrong_field_type_and_non_numeric_answer(tmp_path):
    data_dir = write_task_dir(tmp_path, [json.dumps({"question": 5, "answer": "1"})])
    with pytest.raises(DataError, match=r"validate\.jsonl:1: field 'question' should be str, got int"):
        get_task("gsm8k").load("validate", data_dir)
    data_dir = write_task_dir(tmp_path, [json.dumps({"question": "q", "answer": "many"})])
    with pytest.raises(DataError, match=r"validate\.jsonl:1: field 'answer' should be a number, got 'many'"):
        get_task("gsm8k").load("validate", data_dir)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MissingData, match=r"task 'gsm8k': no data at .*gsm8k/test\.jsonl \(.*gsm8k holds \['validate\.jsonl'\]\)"):
        get_task("gsm8k").load("test", write_task_dir(tmp_path, ["{}"]))
    with pytest.raises(MissingData, match=r"no data at .*nowhere/gsm8k/test\.jsonl \(directory .*nowhere does not exist\)"):
        get_task("gsm8k").load("test", tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown split 'train'"):
        get_task("gsm8k").load("train", tmp_path)


def test_bad_tsv_row(tmp_path):
    (tmp_path / "mgsm").mkdir()
    (tmp_path / "mgsm" / "mgsm_en.tsv").write_text("What is 1+1?\t2\nno tab here\n")
    with pytest.raises(DataError, match=r"mgsm_en\.tsv:2: expected 2 tab-separated fields"):
        get_task("mgsm_en").load("test", tmp_path)


def test_missing_tfds_dataset_gives_a_clear_error(tmp_path):
    with pytest.raises(MissingData, match=r"task 'gsm8k': no data at tfds:.* \(TFDS dataset 'gsm8k' could not be "
                                          r"read: .*\)\. Get it with .*tfds build gsm8k --data_dir DIR"):
        get_task("gsm8k").load("validate", f"tfds:{tmp_path}")
    with pytest.raises(MissingData, match=r"task 'svamp': no data at tfds:.* \(the TFDS catalog has no svamp\)"):
        get_task("svamp").load("validate", f"tfds:{tmp_path}")

