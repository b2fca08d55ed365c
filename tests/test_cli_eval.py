"""`w4s-jax eval` as a user runs it: a subprocess CLI against a StandInEndpoint subprocess on loopback."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from w4s_jax.executor.stand_in_endpoint import spawn
from w4s_jax.tasks import get_task

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMIT = 5


def w4s_jax_eval(*flags: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "w4s_jax.cli.main", "eval", *flags], capture_output=True,
                          text=True, timeout=180, cwd=REPO_ROOT, env=env)


@pytest.fixture(scope="module")
def endpoint_url(shared_data_dir, tmp_path_factory):
    examples = get_task("gsm8k").load("validate", shared_data_dir, limit=LIMIT)
    table = tmp_path_factory.mktemp("table") / "answers.json"
    table.write_text(json.dumps({e.question: e.answer for e in examples}))
    process, url = spawn(["--answers", str(table)])
    yield url
    process.kill()
    process.communicate(timeout=10)


def flags(tmp_path: pathlib.Path, data_dir: pathlib.Path, url: str, workflow: str, task: str = "gsm8k") -> list[str]:
    """Exactly the invocation documented for `w4s-jax eval`."""
    return ["--config=configs/eval.py", f"--config.workflow={workflow}", f"--config.task={task}",
            "--config.split=validate", f"--config.limit={LIMIT}", f"--config.data_dir={data_dir}",
            f"--config.executor.base_url={url}", "--config.executor.model=test-executor",
            f"--config.output={tmp_path / 'out.json'}", f"--config.output_dir={tmp_path / 'run'}"]


@pytest.mark.parametrize("kind", ["file", "builtin"])
def test_eval_writes_a_report_with_the_right_score(kind, tmp_path, shared_data_dir, endpoint_url):
    workflow = tmp_path / "my_cot.py"
    workflow.write_text(
        "def solver(agent, task):\n"
        "    replies = agent.call_llm(messages=[{'role': 'user', 'content': task}], temperature=0.0)\n"
        "    return {'answer': agent.extract_answer_str(replies[0])}\n"
    )
    spec = str(workflow) if kind == "file" else "cot_sc"
    completed = w4s_jax_eval(*flags(tmp_path, shared_data_dir, endpoint_url, spec))
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["score"] == 1.0
    assert len(report["samples"]) == LIMIT
    assert all(s["correct"] and s["error"] is None and s["answer"] for s in report["samples"])
    assert report["usage"]["calls"] == LIMIT and report["workflow"] == spec
    assert "score 1.0000" in completed.stdout


def test_a_workflow_failing_on_every_sample_exits_0_with_its_errors(tmp_path, shared_data_dir, endpoint_url):
    workflow = tmp_path / "broken.py"
    workflow.write_text("def solver(agent, task):\n    return {'answer': undefined_name}\n")
    completed = w4s_jax_eval(*flags(tmp_path, shared_data_dir, endpoint_url, str(workflow)))
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["score"] == 0.0 and report["num_errors"] == LIMIT
    assert {s["error"]["type"] for s in report["samples"]} == {"NameError"}
    assert {s["error"]["line"] for s in report["samples"]} == {2}


@pytest.mark.parametrize(("workflow", "task", "message"), [
    ("no/such/workflow.py", "gsm8k", "workflow: 'no/such/workflow.py' is neither a file nor a built-in"),
    ("cot", "imagenet", "task: unknown task 'imagenet'"),
])
def test_a_broken_invocation_exits_2_naming_the_field(tmp_path, shared_data_dir, workflow, task, message):
    completed = w4s_jax_eval(*flags(tmp_path, shared_data_dir, "http://127.0.0.1:9/v1", workflow, task))
    assert completed.returncode == 2
    assert message in completed.stderr
    assert not (tmp_path / "out.json").exists()
