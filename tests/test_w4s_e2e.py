"""End to end with nothing scripted on the meta-agent side: SmolLM2-135M-Instruct served by the
project's own `w4s-jax serve` (a subprocess, real HTTP over loopback) writes the workflows; the
executor is the StandInEndpoint's oracle stand-in. A 135M model rarely writes a valid workflow, so
invalid actions are part of what is checked: every reward must follow the rule from the recorded
scores, and the archive, journal, trajectories and report must agree with each other."""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config.typed import run_settings
from w4s_jax.executor.repliers import OracleStandIn
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.tasks import get_task
from w4s_jax.trajectory import read_trajectories
from w4s_jax.w4s.meta_agent import meta_agent_policy
from w4s_jax.w4s.rewards import RewardRule
from w4s_jax.w4s.runner import run_w4s

REPO = pathlib.Path(__file__).resolve().parents[1]
SERVER_START_S = 300
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the server's child process: SIGKILL it when pytest dies (even when pytest is SIGKILLed)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served_smollm2(smollm2_gguf_path, tmp_path_factory):
    """`w4s-jax serve` with SmolLM2 on a free loopback port; yields (base_url, model name)."""
    port = free_port()
    command = [sys.executable, "-m", "w4s_jax.cli.main", "serve", f"--config={CONFIGS_DIR / 'serve.py'}",
               "--config.model.preset=smollm2_135m", f"--config.model.path={smollm2_gguf_path}",
               "--config.host=127.0.0.1", f"--config.port={port}", "--config.max_batch=4"]
    # One CPU device, not the 8 fake ones conftest sets up for sharding tests: those would replicate
    # the weights 8 times and pad every batch to 8 rows (GBs of memory, 4x the compute).
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f)
    env = {**os.environ, "PYTHONPATH": str(REPO), "XLA_FLAGS": flags}
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    # The log goes to a file, not a pipe: an unread pipe would block the server once full.
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            yield f"http://127.0.0.1:{port}/v1", wait_for_models(server, port, log_path)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def wait_for_models(server: subprocess.Popen, port: int, log_path: pathlib.Path) -> str:
    """Polls /v1/models until the server answers; returns the served model name."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                return json.loads(response.read())["data"][0]["id"]
        except OSError:
            time.sleep(1.0)
    pytest.fail(f"w4s-jax serve did not come up on port {port}: {log_path.read_text()[-3000:]}")


def expected_rewards(lines: list[dict], seed_scores: list[float], rule: RewardRule) -> dict[tuple, float]:
    """The reward rule replayed from the recorded scores, turn by turn, independently of the loop."""
    best, previous = max(seed_scores), seed_scores[-1]
    expected = {}
    for iteration in sorted({line["iteration"] for line in lines}):
        turn = [line for line in lines if line["iteration"] == iteration]
        for line in turn:
            expected[(line["episode"], line["turn"], line["candidate"])] = rule.reward(line["val_score"], best, previous)
        best = max([best, *(line["val_score"] for line in turn if line["val_score"] is not None and not line["note"])])
        previous = next((line["val_score"] for line in turn if line["selected"]), previous)
    return expected


def test_smollm2_meta_agent_over_http(served_smollm2, tmp_path, shared_data_dir):
    base_url, model = served_smollm2
    task = get_task("gsm8k")
    val = task.load("validate", shared_data_dir, 2)
    test = task.load("test", shared_data_dir, 1)
    table = {e.question: e.answer for e in [*val, *test]}
    with StandInEndpoint(OracleStandIn(table, accuracy=0.7)).in_thread() as executor:
        config = load_config_file(CONFIGS_DIR / "optimize.py")
        config.task.name = "gsm8k"
        config.task.data_dir = str(shared_data_dir)
        config.task.val_limit = 2
        config.task.test_limit = 1
        config.meta_agent.base_url = base_url
        config.meta_agent.model = model
        config.executor.base_url = executor.url
        config.executor.model = "test-executor"
        config.executor.api_key_env = ""
        config.sandbox.workers = 3
        config.sampling.max_new_tokens = 48  # CPU prefill of ~1.5k-token prompts dominates the runtime
        config.w4s.candidates_per_turn = 2
        config.w4s.turns_per_episode = 2
        config.w4s.max_iterations = 2
        config.w4s.max_repairs = 0  # repairs are checked with the scripted meta-agent (test_w4s_loop.py)
        config.w4s.feedback_cases = 1
        config.w4s.progress = False
        started = time.monotonic()
        settings = run_settings(config)
        result = run_w4s(settings, meta_agent_policy(settings, tmp_path / "e2e"), tmp_path / "e2e")
        elapsed = time.monotonic() - started

    raw = [json.loads(line) for line in result.trajectories_path.read_text().splitlines()]
    records = read_trajectories([result.trajectories_path])  # the RLAO reader accepts the file
    assert len(records) == len(raw) == 4
    assert {(r.episode, r.turn, r.candidate) for r in records} == {(0, t, c) for t in (0, 1) for c in (0, 1)}
    for record, line in zip(records, raw):
        assert record.valid_action == (line["workflow_hash"] != "")
        assert (record.val_score is None) == (not record.valid_action)
        assert record.messages[-1]["role"] == "user" and record.reply == line["reply"]

    index = json.loads((result.output_dir / "archive" / "gsm8k-s0" / "index.json").read_text())
    seeds = [e["val_score"] for e in index["entries"] if e["origin"].startswith("seed:")]
    assert index["entries"][0]["origin"] == "seed:cot"
    rule = RewardRule("discrete", -0.2, 0.3, 0.1)
    got = {(r.episode, r.turn, r.candidate): r.reward for r in records}
    assert got == pytest.approx(expected_rewards(raw, seeds, rule))
    evaluated = {line["workflow_hash"] for line in raw if line["val_score"] is not None and not line["note"]}
    assert {e["workflow_hash"] for e in index["entries"] if not e["origin"].startswith("seed:")} == evaluated
    for entry in index["entries"]:
        assert (result.output_dir / "archive" / "gsm8k-s0" / entry["file"]).is_file()

    journal = [json.loads(line) for line in result.journal_path.read_text().splitlines()]
    assert sum(1 for r in journal if r["kind"] == "candidate") == 4
    replies = {key: text for r in journal if r["kind"] == "generations" for key, text in r["replies"].items()}
    assert {f"gsm8k-s0/e0/t{t}/c{c}/r0" for t in (0, 1) for c in (0, 1)} <= set(replies)
    invalid = sum(1 for r in records if not r.valid_action)
    assert sum(1 for r in journal if r["kind"] == "invalid_action") == invalid

    report = result.report_path.read_text()
    assert f"invalid actions (no python block defining solver): {invalid}" in report
    assert "| gsm8k | gsm8k-s0" in report and "| test-executor | executor |" in report
    assert (result.output_dir / "validation_curve.png").stat().st_size > 1000
    best = result.best_workflows["gsm8k"]
    assert best.val_score == max(e["val_score"] for e in index["entries"])
    assert best.test_score is not None
    print(f"e2e: {elapsed:.1f} s, {invalid} of 4 candidates invalid, best {best.origin} {best.val_score:.3f}")
