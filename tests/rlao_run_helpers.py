"""Small `w4s-jax rlao` runs as a user starts them, for the budget and kill-and-resume tests.

The meta-agent is the `tiny` preset (random weights exported once as safetensors, byte tokenizer; its
context widened so the W4S prompt fits), the executor a StandInEndpoint subprocess on loopback that
knows the gsm8k answers. Every run shares the test session's JAX compilation cache, so only the first compiles.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import urllib.request

from w4s_jax.executor.stand_in_endpoint import spawn

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
VAL_LIMIT = 2
# The stand-in serves under a name the default price table knows, so every run spends (nominal
# dollars, nothing is paid) and the budget and its journal are exercised; it is still the stand-in.
EXECUTOR_MODEL = "gpt-4o-mini"

# One rollout, one turn of 2 candidates, seed workflow cot on 2 validation problems, 2 training steps a
# round, a checkpoint each step; one sandbox worker and one evaluation at a time, so the executor
# calls of a run come one after another.
RUN_FLAGS = [
    "--config.model.preset=tiny", "--config.train.tokenizer=bytes", "--config.task.data_dir=package:w4s-jax",
    f"--config.task.val_limit={VAL_LIMIT}", f"--config.executor.model={EXECUTOR_MODEL}",
    "--config.w4s.max_iterations=1", "--config.w4s.candidates_per_turn=2", "--config.w4s.seed_workflows=cot",
    "--config.w4s.progress=False", "--config.w4s.design_principles=False", "--config.w4s.feedback_cases=1",
    "--config.sampling.max_new_tokens=16", "--config.sampling.max_prompt_len=5000",
    "--config.rlao.keep_invalid=True", "--config.train.seq_len=5120", "--config.train.micro_batch=1",
    "--config.train.steps=2", "--config.train.progress=False", "--config.checkpoint.every_steps=1",
    "--config.sandbox.workers=1", "--config.w4s.max_concurrent_evaluations=1",
]  # fmt: skip


def export_tiny_meta_agent(directory: pathlib.Path) -> pathlib.Path:
    """Random `tiny` weights as a safetensors directory, with room for a 5,000-byte prompt."""
    code = (
        "import json, pathlib, sys\n"
        "from w4s_jax.models import export_hf\n"
        "from w4s_jax.models.presets import get_preset\n"
        "from w4s_jax.models.weights import init_random\n"
        "from w4s_jax.parallel.mesh import make_mesh\n"
        "config = get_preset('tiny').replace(max_positions=8192)\n"
        "export_hf(init_random(config, make_mesh(1, 1, 1), 0), config, sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(directory)], check=True, env=run_env(),
                   cwd=REPO_ROOT, timeout=300)
    return directory


def run_env(**extra: str) -> dict[str, str]:
    """One CPU device (not conftest's 8 fake ones), no API key; the JAX compilation cache is the test
    session's (conftest's JAX_COMPILATION_CACHE_DIR), so only the first run compiles."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update({"XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO_ROOT), **extra})
    return env


def answers_table(path: pathlib.Path) -> pathlib.Path:
    from w4s_jax.tasks import get_task

    examples = get_task("gsm8k").load("validate", "package:w4s-jax", limit=VAL_LIMIT)
    path.write_text(json.dumps({example.question: example.answer for example in examples}))
    return path


class StandIn:
    """A StandInEndpoint subprocess; `stats()` reads its request log over HTTP."""

    def __init__(self, answers: pathlib.Path) -> None:
        self.process, self.url = spawn(["--answers", str(answers), "--model", EXECUTOR_MODEL])

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=30) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)


def rlao_command(weights: pathlib.Path, url: str, output_dir: pathlib.Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "w4s_jax.cli.main", "rlao", *RUN_FLAGS, f"--config.model.path={weights}",
            f"--config.executor.base_url={url}", f"--config.output_dir={output_dir}", *extra]


def run(command: list[str], log: pathlib.Path, env: dict[str, str], timeout_s: float = 600) -> subprocess.Popen:
    """Runs `command` to its end with stdout and stderr in `log` (a file: a full pipe cannot stall it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        process.wait(timeout=timeout_s)
    return process


def jsonl(path: pathlib.Path) -> list[dict]:
    """Every line of a JSONL file, parsed (a line that does not parse fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
