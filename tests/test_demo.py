"""`w4s-jax demo` end to end (a shorter setting than the README's run): every stage leaves its output."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

SHORT = [
    "--config.task.val_limit=3",
    "--config.task.test_limit=3",
    "--config.sampling.max_new_tokens=48",
    "--config.w4s.max_iterations=1",
    "--config.w4s.candidates_per_turn=2",
    "--config.w4s.max_repairs=0",
    "--config.train.steps=1",
]


def test_demo_runs_end_to_end(tmp_path, shared_data_dir):
    out = tmp_path / "demo"
    # One CPU device, as a user's machine has: the 8 fake devices of the test session are not needed.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "w4s_jax.cli.main", "demo", f"--config.output_dir={out}",
               f"--config.task.data_dir={shared_data_dir}", *SHORT]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]

    report = (out / "report.md").read_text()
    assert "stand-in for a strong executor" in report
    assert "OPENAI_API_KEY" in report
    assert "## Executor" in report and "answered calls" in report  # calls, tokens, errors by kind
    assert not (out / "executor_server.json").exists()  # the stand-in is no model server
    assert "training_loss.png" in report
    assert (out / "training_loss.png").stat().st_size > 1000
    assert (out / "round_0" / "collect" / "validation_curve.png").stat().st_size > 1000
    assert (out / "round_0" / "collect" / "report.md").is_file()

    rows = [json.loads(line) for line in (out / "round_0" / "collect" / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # one turn x two candidates
    assert all(row["schema"] == "w4s-trajectory/1" and isinstance(row["reward"], float) for row in rows)

    metrics = [json.loads(line) for line in (out / "round_0" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and metrics[-1]["step"] == 1 and metrics[-1]["loss"] > 0
    checkpoints = out / "round_0" / "train" / "checkpoints"
    assert any(path.name.isdigit() for path in checkpoints.iterdir()), "no orbax checkpoint step directory"

    result = json.loads((out / "round_0" / "collect" / "result.json").read_text())
    best = result["best"]["humaneval"]
    assert 0.0 < best["val_score"] <= 1.0  # the stand-in executor scores above zero
    assert best["test_score"] is not None
