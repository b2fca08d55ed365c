"""Multi-host generation for real: two processes joined by jax.distributed (CPU, gloo collectives)
run the in-process sampler in collective rounds on one global batch. Each host gets exactly the
replies a single process gives for its own conversations, a host that is done keeps serving the
other's rounds, and both stop together (tests/multihost_child.py is one host)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

import jax

from tests.conftest import REPO_ROOT
from tests.multihost_child import CALLS, build_policy, conversation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_two_hosts(module: str, *args: str, timeout_s: float) -> list[dict]:
    """Runs `python -m module *args` as processes 0 and 1 of one jax.distributed job (2 CPU devices
    each); returns each one's last stdout line as JSON, in process order."""
    port = _free_port()
    children = [subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                        "JAX_PLATFORMS": "cpu", "W4S_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                        "W4S_NUM_PROCESSES": "2", "W4S_PROCESS_ID": str(process_id), "PYTHONPATH": str(REPO_ROOT)})
        for process_id in range(2)]
    outputs = []
    try:
        for child in children:
            out, err = child.communicate(timeout=timeout_s)
            assert child.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            child.kill()
    return outputs


def test_two_hosts_generate_in_lockstep_on_one_global_batch(smollm2_gguf_path):
    outputs = _run_two_hosts("tests.multihost_child", str(smollm2_gguf_path), timeout_s=300)

    # The same model in one process, each conversation alone: replies do not depend on batch-mates.
    reference = build_policy(str(smollm2_gguf_path), devices=jax.devices()[:4])

    async def alone(text: str, seed: int) -> str:
        (reply,), = await reference.generate([conversation(text)], n=1, temperature=0.7, max_new_tokens=8, seed=[seed])
        return reply

    for host, output in enumerate(outputs):
        assert output["process"] == host and output["devices"] == 4
        expected = [asyncio.run(alone(text, seed)) for _, requests in CALLS[host] for text, seed in requests]
        assert output["replies"] == expected
        assert output["usage"]["replies"] == len(expected)
        assert 0 < output["usage"]["completion_tokens"] <= 8 * len(expected)
    # Round 1: host 0's first batch with host 1's; round 2: host 0's second batch, host 1 done and
    # serving; round 3: both done. Every round is a collective, so both hosts count the same.
    assert [output["rounds"] for output in outputs] == [3, 3]
    assert any(outputs[0]["replies"]) and outputs[0]["replies"] != outputs[1]["replies"]


def test_a_w4s_run_on_two_hosts_shares_rollouts_and_agrees_on_the_result(tmp_path, smollm2_gguf_path,
                                                                          shared_data_dir):
    from w4s_jax.executor.stand_in_endpoint import spawn
    from w4s_jax.tasks import get_task

    task = get_task("gsm8k")
    table = {e.question: e.answer for e in task.load("validate", shared_data_dir, 2)}
    table.update({e.question: "999999" for e in task.load("test", shared_data_dir, 2)})
    (tmp_path / "answers.json").write_text(json.dumps(table))
    endpoint, url = spawn(["--answers", str(tmp_path / "answers.json")])
    out = tmp_path / "run"
    try:
        results = _run_two_hosts("tests.multihost_run_child", str(smollm2_gguf_path), str(shared_data_dir), url,
                                 str(out), timeout_s=400)
    finally:
        endpoint.kill()
    # Round-robin shares, one directory per host; nothing written by both.
    assert sorted(p.name for p in (out / "host0" / "archive").iterdir()) == ["gsm8k-s0", "gsm8k-s2"]
    assert sorted(p.name for p in (out / "host1" / "archive").iterdir()) == ["gsm8k-s1"]
    assert [r["output_dir"] for r in results] == [str(out / "host0"), str(out / "host1")]
    # One run-wide answer: the same choice (validation ties go to the earliest rollout), its test
    # score measured once by host 0 and known to both, and the whole run's trajectories on each host.
    assert results[0]["best"] == results[1]["best"]
    rollout, val_score, test_score = results[0]["best"]["gsm8k"]
    assert rollout == "gsm8k-s0" and val_score == 1.0 and test_score == 0.0
    trajectories = [(out / f"host{i}" / "trajectories.jsonl").read_text() for i in range(2)]
    assert trajectories[0] == trajectories[1]
    lines = [json.loads(line) for line in trajectories[0].splitlines()]
    assert sorted({line["rollout"] for line in lines}) == ["gsm8k-s0", "gsm8k-s1", "gsm8k-s2"]
    assert len(lines) == results[0]["trajectories"] == 6  # 3 rollouts x 1 turn x 2 candidates
    assert results[0]["rounds"] == results[1]["rounds"] >= 2
    tests_run = [sum(json.loads(line)["kind"] == "test_evaluation"
                     for line in (out / f"host{i}" / "journal.jsonl").read_text().splitlines()) for i in range(2)]
    assert tests_run == [1, 0]
