"""Small fixture files in the exact formats of the MMLU-Pro, GSM-Plus and GAIA releases (rows made up
here, none copied from a benchmark), and `w4s-jax eval` run as a user runs it against a stand-in
executor that knows the gold answers."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from w4s_jax.executor.stand_in_endpoint import spawn

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LETTERS = "ABCDEFGHIJ"


def mmlu_pro_rows() -> list[dict]:
    """12 rows with every release field; some options lists end in "N/A" (the release pads short ones)."""
    categories = ["physics", "law", "math"]
    rows = []
    for index in range(12):
        count = 10 if index % 3 else 8
        options = [f"option {index}-{k}" for k in range(count)] + ["N/A"] * (10 - count)
        answer_index = (index * 7) % count
        rows.append({
            "question_id": 100 + index, "question": f"Made-up question number {index}: which option is right?",
            "options": options, "answer": LETTERS[answer_index], "answer_index": answer_index,
            "cot_content": "A: Let's think step by step. It is the one.", "category": categories[index % 3],
            "src": f"ori_mmlu-made_up_{index}",
        })
    return rows


def write_mmlu_pro(data_dir: pathlib.Path, kind: str = "parquet", rows: list[dict] | None = None) -> pathlib.Path:
    """`data_dir/mmlu_pro/test.{parquet,jsonl,json}` as the release's test file."""
    rows = mmlu_pro_rows() if rows is None else rows
    folder = data_dir / "mmlu_pro"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"test.{kind}"
    if kind == "parquet":
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows), encoding="utf-8")
    return path


GSM_PLUS_TYPES = ["numerical substitution", "digit expansion", "integer-decimal-fraction conversion",
                  "adding operation", "reversing operation", "problem understanding", "distractor insertion",
                  "critical thinking"]


def gsm_plus_rows() -> list[dict]:
    """16 rows, two of each perturbation type; the critical-thinking ones answer "None"."""
    rows = []
    for index in range(16):
        kind = GSM_PLUS_TYPES[index % 8]
        apples, eaten = 10 + index, 3
        answer = "None" if kind == "critical thinking" else str(apples - eaten)
        question = (f"Tom has some apples and eats {eaten}. How many are left?" if answer == "None" else
                    f"Tom has {apples} apples and eats {eaten}. How many are left?")
        rows.append({
            "question": question, "solution": f"{apples} - {eaten} = {answer}. #### {answer}", "answer": answer,
            "perturbation_type": kind, "seed_question": f"Tom has {apples} apples and eats {eaten}. How many are left?",
            "seed_solution": f"{apples} - {eaten} = {apples - eaten}. #### {apples - eaten}",
            "seed_answer": str(apples - eaten),
        })
    return rows


def write_gsm_plus(data_dir: pathlib.Path, name: str = "test.jsonl") -> pathlib.Path:
    folder = data_dir / "gsm_plus"
    folder.mkdir(parents=True, exist_ok=True)
    rows = gsm_plus_rows()
    path = folder / name
    text = json.dumps(rows) if name.endswith(".json") else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def gaia_rows() -> list[dict]:
    """10 validation rows over levels 1-3; one attaches a CSV, one a PNG, one a JSON file."""
    rows = []
    for index in range(10):
        rows.append({"task_id": f"made-up-{index:02d}", "Question": f"Made-up question {index}: what is {index} + 1?",
                     "Level": index % 3 + 1, "Final answer": str(index + 1), "file_name": "",
                     "Annotator Metadata": {"Steps": "add one", "Tools": "none"}})
    rows[1].update(file_name="fruit.csv", **{"Final answer": "pear, plum"},
                   Question="Made-up question 1: which fruits in the attached table cost 2?")
    rows[2].update(file_name="photo.png")
    rows[3].update(file_name="prices.json")
    return rows


def write_gaia(data_dir: pathlib.Path, split: str = "validation", rows: list[dict] | None = None) -> pathlib.Path:
    """`data_dir/gaia/2023/<split>/metadata.jsonl` and its attached files, as the release lays them out."""
    folder = data_dir / "gaia" / "2023" / split
    folder.mkdir(parents=True, exist_ok=True)
    rows = gaia_rows() if rows is None else rows
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "fruit.csv").write_text("fruit,price\napple,1\npear,2\nplum,2\n", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / "prices.json").write_text('{"pear": 2}', encoding="utf-8")
    return folder / "metadata.jsonl"


def run_eval(tmp_path: pathlib.Path, task: str, data_dir: pathlib.Path, workflow: str, table: dict[str, str],
             *extra: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`w4s-jax eval` on the test split against a stand-in executor answering from `table`; (process, report)."""
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(table), encoding="utf-8")
    process, url = spawn(["--answers", str(answers)])
    try:
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        output = tmp_path / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "w4s_jax.cli.main", "eval", "--config=configs/eval.py", f"--config.workflow={workflow}",
             f"--config.task={task}", "--config.split=test", f"--config.data_dir={data_dir}",
             f"--config.executor.base_url={url}", "--config.executor.model=test-executor",
             "--config.executor.api_key_env=", f"--config.output={output}", f"--config.output_dir={tmp_path / 'run'}",
             "--config.sandbox.workers=4", *extra],
            capture_output=True, text=True, timeout=240, cwd=REPO_ROOT, env=env)
    finally:
        process.kill()
        process.communicate(timeout=10)
    report = json.loads(output.read_text()) if output.is_file() else None
    return done, report
