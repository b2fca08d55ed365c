"""A real language model as the executor, offline: `w4s-jax demo --config.demo.executor=smollm2` starts
`w4s-jax serve` on the shipped SmolLM2-135M-Instruct and runs the loop against its messy replies; and
the parts that make that survivable (a request the endpoint rejects is a per-sample error) and
countable (calls, tokens and errors by kind in the demo report)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from aiohttp import web
from conftest import REPO_ROOT

from w4s_jax.cli.demo_report import error_kind, executor_calls, sample_errors
from w4s_jax.cli.local_executor import local_executor
from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config_errors import ConfigError
from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.errors import ExecutorError
from w4s_jax.models import get_preset, load_model
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.sandbox import SandboxSettings
from w4s_jax.serving.protocol import Defaults
from w4s_jax.serving.server import BackgroundServer, make_app
from w4s_jax.tasks import get_task
from w4s_jax.w4s.sandbox_evaluator import SandboxEvaluator
from w4s_jax.workflows import builtin_source

SHORT = [
    "--config.demo.executor=smollm2",
    "--config.task.val_limit=2",
    "--config.task.test_limit=2",
    "--config.sampling.max_new_tokens=32",
    "--config.demo.smollm2_max_tokens=32",
    "--config.w4s.seed_workflows=cot",  # one seed: every server call is a SmolLM2 generation on 2 CPU cores
    "--config.w4s.max_iterations=1",
    "--config.w4s.candidates_per_turn=2",
    "--config.w4s.max_repairs=0",
    "--config.train.steps=1",
]


def test_demo_against_smollm2_finishes_with_per_sample_errors_and_reports_the_server(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user's machine
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "w4s_jax.cli.main", "demo", f"--config.output_dir={out}", *SHORT]
    # A few CPU-minutes; the wall-clock limit leaves room for a machine shared with other jobs.
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=2700)
    assert done.returncode == 0, done.stderr[-4000:]

    server = json.loads((out / "executor_server.json").read_text())
    assert server["model"] == "smollm2-135m-instruct" and server["up_at_end"] is True
    assert 100 < server["peak_rss_mib"] < 16_000  # read from the server's /proc/PID/status (VmHWM)
    calls = executor_calls(out / "round_0" / "collect" / "executor_cache.sqlite")
    assert calls["calls"] > 0 and calls["completion_tokens"] > 0 and calls["prompt_tokens"] > calls["calls"]
    samples, kinds = sample_errors(out / "round_0" / "collect" / "journal.jsonl")
    assert samples >= 2 + 2  # the seed on the two validation and the two test problems at least

    report = (out / "report.md").read_text()
    assert "real language model, offline" in report and "near zero" in report
    assert f"{calls['calls']} answered calls" in report and f"{calls['completion_tokens']} completion tokens" in report
    assert f"ended in an error: {sum(kinds.values())}" in report
    assert all(f"| {kind} | {count} |" in report for kind, count in kinds.items())
    assert f"peak memory (VmHWM) {server['peak_rss_mib']:.0f} MiB" in report and "still up at the end" in report
    result = json.loads((out / "round_0" / "collect" / "result.json").read_text())
    best = result["best"]["humaneval"]
    assert 0.0 <= best["val_score"] <= 1.0 and best["test_score"] is not None


def test_an_unknown_executor_kind_exits_2_naming_the_field(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "w4s_jax.cli.main", "demo", f"--config.output_dir={tmp_path}",
               "--config.demo.executor=gpt5"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "demo.executor: unknown executor 'gpt5'" in done.stderr and "smollm2" in done.stderr
    assert not (tmp_path / "executor_server.json").exists()


def test_external_starts_nothing_and_leaves_the_endpoint_as_configured(tmp_path):
    config = load_config_file(CONFIGS_DIR / "demo.py")
    config.demo.executor = "external"
    config.executor.base_url = "http://127.0.0.1:9/v1"
    with local_executor(config, tmp_path) as url:
        assert url is None
    assert config.executor.base_url == "http://127.0.0.1:9/v1" and not list(tmp_path.iterdir())
    config.demo.executor = "llama"
    with pytest.raises(ConfigError, match=r"demo\.executor: unknown executor"), local_executor(config, tmp_path):
        pass


async def _evaluate_against_status(status: int, tmp_path) -> object:
    """The cot workflow on two GSM8K problems, its executor an HTTP endpoint on loopback that answers
    every call with `status` (as `w4s-jax serve` answers 422 when a model writes no valid JSON)."""

    async def chat(_request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "no valid JSON", "code": "json_invalid"}}, status=status)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    task = get_task("gsm8k")
    examples = task.load("validate", "package:w4s-jax", 2)
    executor = ExecutorClient(base_urls=[f"http://127.0.0.1:{port}/v1"], model="m", cache_path=tmp_path / "c.sqlite",
                              budget_usd=1.0)
    try:
        async with SandboxEvaluator(SandboxSettings(workers=2, sample_timeout_s=20.0), executor) as evaluator:
            return await evaluator.evaluate(builtin_source("cot"), task, examples)
    finally:
        await executor.aclose()
        await runner.cleanup()


def test_a_rejected_request_is_the_samples_error_but_a_refused_caller_stops_the_evaluation(tmp_path):
    outcome = asyncio.run(_evaluate_against_status(422, tmp_path))
    assert outcome.score == 0.0 and outcome.error_count == 2
    assert [error_kind(case.error) for case in outcome.cases] == ["ExecutorError (HTTP 422)"] * 2
    with pytest.raises(ExecutorError, match="HTTP 401"):  # a wrong key is the run's fault: no score journaled
        asyncio.run(_evaluate_against_status(401, tmp_path))


def test_error_kinds_name_the_exception_and_an_executor_calls_last_status():
    assert error_kind("NameError: name 'solution' is not defined") == "NameError"
    assert error_kind("TimeoutError: sample exceeded 30 s") == "TimeoutError"
    failed = "ExecutorError: executor call failed: endpoint http://x/v1, model 'm', 1 attempt(s), last status: HTTP 400: long"
    assert error_kind(failed) == "ExecutorError (HTTP 400)"
    assert error_kind("ExecutorError: ... last status: timeout") == "ExecutorError (timeout)"


@pytest.mark.parametrize("json_invalid", ["error", "return"])
def test_the_server_returns_json_that_does_not_parse_as_is_when_told(json_invalid, smollm2_gguf_path, one_device_mesh):
    """What the smollm2 executor is served with (`json_invalid=return`): a JSON-mode choice that is still
    not JSON after the retries comes back as decoded, like OpenAI's reply cut at max_tokens, and the
    client turns it into the paper's {"JSONDecodeError": text}; the default stays HTTP 422."""
    tokenizer = ChatTokenizer.from_path(smollm2_gguf_path)
    _, model = load_model(get_preset("tiny").replace(vocab_size=tokenizer.vocab_size), "", mesh=one_device_mesh, seed=0)
    sampler = Sampler(model, tokenizer, one_device_mesh, max_prompt_len=64, max_batch=4, min_new_bucket=8)
    defaults = Defaults(max_new_tokens=8, temperature=1.0, top_p=1.0, top_k=0, seed=0)
    app = make_app(sampler, served_name="tiny", defaults=defaults, steps_per_call=1, json_retries=1,
                   json_invalid=json_invalid)

    async def ask(url: str) -> list[dict]:
        client = ExecutorClient(base_urls=[url + "/v1"], model="tiny", cache_path=None, budget_usd=1.0, max_tokens=6)
        try:
            return await client.call_json_format_llm(messages=[{"role": "user", "content": "JSON please"}],
                                                     return_dict_keys=["answer"])
        finally:
            await client.aclose()

    with BackgroundServer(app) as url:
        if json_invalid == "error":
            with pytest.raises(ExecutorError, match="HTTP 422"):
                asyncio.run(ask(url))
        else:
            (reply,) = asyncio.run(ask(url))  # random weights: six tokens of anything but JSON
            assert set(reply) == {"JSONDecodeError", "answer"} and reply["answer"] == "NO answer IN DICTIONARY"


def test_simulated_kind_serves_the_simulated_executor_on_loopback(tmp_path):
    config = load_config_file(CONFIGS_DIR / "demo.py")
    config.demo.executor, config.task.val_limit, config.task.test_limit = "simulated", 2, 2
    with local_executor(config, tmp_path) as url:
        assert config.executor.base_url == url and url.startswith("http://127.0.0.1:")
        assert config.executor.model == "simulated-executor" and "simulated-executor" in config.executor.prices

        async def ask() -> list[str]:
            client = ExecutorClient(base_urls=[url], model=config.executor.model, cache_path=None, budget_usd=1.0)
            try:
                return await client.call_llm(messages=[{"role": "user", "content": "Write def add(a, b)."}])
            finally:
                await client.aclose()

        (reply,) = asyncio.run(ask())
        assert reply.strip()


STARTERS = {  # how a command starts a local server, and what the server's /proc/PID/cmdline holds once up
    "serve (smollm2)": ("from w4s_jax.child_processes import dying_with_this_process\n"
                        "child = subprocess.Popen(dying_with_this_process(['/bin/sleep', '600']))", b"/bin/sleep"),
    "stand-in and simulated executors": ("from w4s_jax.executor.stand_in_endpoint import spawn\n"
                                         "child, _ = spawn(['--answers', sys.argv[1]])", b"w4s_jax.executor.stand_in_endpoint"),
}


@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_a_local_server_dies_with_the_command_that_started_it_even_on_sigkill(starter, tmp_path):
    start, running = STARTERS[starter]
    pid_file, answers = tmp_path / "child.pid", tmp_path / "answers.json"
    answers.write_text(json.dumps({"What is 1 + 1?": "2"}))
    parent = (f"import subprocess, sys, time\n{start}\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", parent, str(answers)], cwd=REPO_ROOT,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        cmdline = pathlib.Path(f"/proc/{child}/cmdline")
        while running not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)  # the shim execs the command under its own pid
        assert running in cmdline.read_bytes()
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 30
    while pathlib.Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pathlib.Path(f"/proc/{child}").exists()
