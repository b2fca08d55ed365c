"""MMLU-Pro: the release's parquet and JSON/JSONL files, the official prompt, the official letter
extraction on its edge cases, the category filter, the seeded split, and `w4s-jax eval` end to end."""

from __future__ import annotations

import pytest
from release_fixtures import mmlu_pro_rows, run_eval, write_mmlu_pro

from w4s_jax.tasks import DataError, get_task
from w4s_jax.tasks.mmlu_pro import extract_letter


@pytest.mark.parametrize(("reply", "letter"), [
    ("Step by step... the answer is (C).", "C"),
    ("so the answer is D", "D"),
    ("the answer is (B) not (C); again, the answer is (E)", "B"),  # the first "answer is" wins
    ("Reasoning.\nAnswer: H", "H"),
    ("answer: F", "F"),
    ("Answer: B\nlater Answer: C", "B"),  # the first line holding one
    ("Answer: B and Answer: C", "C"),  # ... its last one
    ("I choose J", "J"),  # the last standalone letter
    ("A good guess is E, or maybe G.", "G"),
    ("G", "G"),
    ("the answer is (c)", None),  # lowercase letters are not letters to the official regexes
    ("no letter here", None),
    ("", None),
    (None, None),
])
def test_letter_extraction_follows_the_official_evaluation(reply, letter):
    assert extract_letter(reply) == letter


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "json"])
def test_release_files_load_with_na_options_dropped(kind, tmp_path):
    write_mmlu_pro(tmp_path, kind)
    task = get_task("mmlu_pro")
    examples = task.load("validate", tmp_path) + task.load("test", tmp_path)
    assert len(examples) == 12 and len({e.id for e in examples}) == 12
    by_id = {e.id: e for e in examples}
    row = mmlu_pro_rows()[3]  # 8 options and two N/A
    example = by_id[str(row["question_id"])]
    assert example.meta["options"] == row["options"][:8] and example.answer == row["answer"]
    assert example.question.startswith("The following are multiple choice questions (with answers) about physics.")
    assert "the answer is (X)" in example.question
    assert "Options:\nA. option 3-0\n" in example.question and "H. option 3-7" in example.question
    assert "I. " not in example.question and "N/A" not in example.question
    assert task.score(f"so the answer is ({row['answer']})", example) == 1.0
    assert task.score("the answer is (A)" if row["answer"] != "A" else "the answer is (B)", example) == 0.0


def test_formats_give_the_same_examples_and_the_split_is_seeded(tmp_path):
    write_mmlu_pro(tmp_path / "p", "parquet")
    write_mmlu_pro(tmp_path / "j", "jsonl")
    for seed in (0, 1):
        task = get_task("mmlu_pro", seed)
        parquet = [(e.id, e.question, e.answer) for e in task.load("test", tmp_path / "p")]
        assert parquet == [(e.id, e.question, e.answer) for e in task.load("test", tmp_path / "j")]
        validate = {e.id for e in task.load("validate", tmp_path / "p")}
        assert len(validate) == 2 and not validate & {i for i, _, _ in parquet}  # 1:4, disjoint
    assert {e.id for e in get_task("mmlu_pro", 0).load("validate", tmp_path / "p")} != \
        {e.id for e in get_task("mmlu_pro", 1).load("validate", tmp_path / "p")}


def test_category_filter_keeps_the_split_of_each_question(tmp_path):
    write_mmlu_pro(tmp_path)
    everything = get_task("mmlu_pro").load("test", tmp_path)
    law = get_task("mmlu_pro", 0, "law").load("test", tmp_path)
    assert law and {e.meta["category"] for e in law} == {"law"}
    assert [e.id for e in law] == [e.id for e in everything if e.meta["category"] == "law"]
    both = get_task("mmlu_pro", 0, "law, physics").load("test", tmp_path)
    assert {e.meta["category"] for e in both} == {"law", "physics"}
    with pytest.raises(ValueError, match="unknown MMLU-Pro category 'astrology'; known: biology"):
        get_task("mmlu_pro", 0, "astrology")
    with pytest.raises(ValueError, match="task 'gsm8k' takes no subset"):
        get_task("gsm8k", 0, "law")


@pytest.mark.parametrize(("change", "message"), [
    ({"answer": "K"}, "field 'answer' should be a letter A-H, got 'K'"),  # row 1 has 8 options
    ({"options": ["only one"]}, "field 'options' should hold 2 to 10 options besides N/A, got 1"),
    ({"options": "A or B"}, "field 'options' should be list, got str"),
])
def test_malformed_rows_name_the_file_row_and_field(change, message, tmp_path):
    rows = mmlu_pro_rows()
    for row in rows:
        row.update(change)
    path = write_mmlu_pro(tmp_path, "jsonl", rows)
    with pytest.raises(DataError, match=message) as caught:
        get_task("mmlu_pro").load("test", tmp_path)
    assert str(caught.value).startswith(f"{path}:")


def test_eval_end_to_end_on_the_fixture(tmp_path):
    write_mmlu_pro(tmp_path / "data")
    task = get_task("mmlu_pro", 0, "law,math")
    examples = task.load("test", tmp_path / "data")
    table = {e.question: f"Thinking... the answer is ({e.answer})" for e in examples}
    done, report = run_eval(tmp_path, "mmlu_pro", tmp_path / "data", "cot", table, "--config.subset=law,math")
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["num_samples"] == len(examples) and report["score"] == 1.0
    assert {s["id"] for s in report["samples"]} == {e.id for e in examples}
    bad, _ = run_eval(tmp_path, "mmlu_pro", tmp_path / "data", "cot", table, "--config.subset=astrology")
    assert bad.returncode == 2 and "configuration error: subset: unknown MMLU-Pro category 'astrology'" in bad.stderr


def test_letter_extraction_equals_the_official_regexes_in_linear_time():
    """The official three patterns, run as published, against the linear rewrite on random replies;
    then replies long enough that the published patterns would backtrack for minutes."""
    import random
    import re

    official = (re.compile(r"answer is \(?([A-J])\)?"), re.compile(r".*[aA]nswer:\s*([A-J])"))
    last = re.compile(r"\b[A-J]\b(?!.*\b[A-J]\b)", re.DOTALL)

    def reference(text: str) -> str | None:
        for pattern in official:
            match = pattern.search(text)
            if match:
                return match.group(1)
        match = last.search(text)
        return match.group(0) if match else None

    rng = random.Random(0)
    pieces = ["A", "B", "J", "K", "a", "answer:", "Answer: ", "answer is (", "\n", " ", ")", "x", "  \n "]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert extract_letter(text) == reference(text), text
    assert extract_letter(" " * 200_000) is None
    assert extract_letter("answer:" * 50_000 + " C") == "C"
    assert extract_letter("A " * 100_000) == "A"
