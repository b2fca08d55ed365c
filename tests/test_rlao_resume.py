"""Kill-and-resume: `w4s-jax train` in real subprocesses, killed (SIGKILL) and preempted (SIGTERM),
resumes from its orbax checkpoints with the same loss curve as an uninterrupted run."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 60


def _command(data: pathlib.Path, out: pathlib.Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "w4s_jax.cli.main", "train",
        "--config.model.preset=tiny", "--config.train.tokenizer=bytes", f"--config.train.data={data}",
        "--config.train.seq_len=256", "--config.train.micro_batch=4", f"--config.train.steps={STEPS}",
        "--config.checkpoint.every_steps=2", "--config.checkpoint.keep=2", "--config.train.progress=False",
        "--config.optimizer.learning_rate=1e-3", f"--config.output_dir={out}", *extra,
    ]  # fmt: skip


def _env() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _losses(out: pathlib.Path) -> list[tuple[int, float]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def _run(data, out, *extra):
    done = subprocess.run(_command(data, out, *extra), env=_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _interrupt(data, out, sig, after_step: int) -> subprocess.CompletedProcess:
    """Starts a run and sends `sig` once metrics.jsonl shows `after_step` (output to files, not
    pipes, so a chatty child can never stall on a full pipe)."""
    out.mkdir(parents=True, exist_ok=True)
    logs = {name: (out / f"{name}.{sig.name}.log").open("w+") for name in ("stdout", "stderr")}
    process = subprocess.Popen(_command(data, out), env=_env(), cwd=REPO_ROOT, stdout=logs["stdout"],
                               stderr=logs["stderr"], text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= after_step:
                process.send_signal(sig)
                break
            time.sleep(0.05)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    text = {}
    for name, handle in logs.items():
        handle.seek(0)
        text[name] = handle.read()
        handle.close()
    return subprocess.CompletedProcess(process.args, process.returncode, text["stdout"], text["stderr"])


@pytest.mark.slow
def test_sigkill_and_sigterm_resume_bit_identically(tmp_path, rlao_trajectory_writer):
    data = rlao_trajectory_writer(tmp_path / "trajectories.jsonl", history_turns=0)
    reference = tmp_path / "reference"
    _run(data, reference)
    expected = _losses(reference)
    assert [s for s, _ in expected] == list(range(1, STEPS + 1))

    run = tmp_path / "interrupted"
    killed = _interrupt(data, run, signal.SIGKILL, after_step=6)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    preempted = _interrupt(data, run, signal.SIGTERM, after_step=16)
    assert preempted.returncode == 0, preempted.stderr[-3000:]
    assert "SIGTERM received; checkpoint saved at step" in preempted.stdout, preempted.stdout[-2000:]
    assert "resumed at step" in preempted.stderr + preempted.stdout
    final = _run(data, run)
    assert "resumed at step" in final.stderr + final.stdout

    assert _losses(run) == expected  # bit-identical on CPU, step by step
    # The loop's clock adds up across the resumes: the preempted run's time and the final run's (the
    # SIGKILLed run could write nothing).
    attempts = json.loads((run / "phase_times.json").read_text())["attempts"]
    assert len(attempts) == 2 and all(a["busy_s"]["training"] > 0 for a in attempts), attempts
