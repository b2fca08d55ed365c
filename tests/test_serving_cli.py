"""`w4s-jax serve` as a real subprocess with the documented invocation, on SmolLM2's GGUF:
one request over HTTP, SIGTERM while it is in flight, the request completes, exit status 0."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import openai

REPO = pathlib.Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_subprocess_answers_then_exits_cleanly_on_sigterm(smollm2_gguf_path):
    port = free_port()
    command = [
        str(pathlib.Path(sys.executable).parent / "w4s-jax"), "serve", "--config=configs/serve.py",
        "--config.model.preset=smollm2_135m", f"--config.model.path={smollm2_gguf_path}",
        "--config.host=127.0.0.1", f"--config.port={port}",
    ]
    # One CPU device, like a plain machine; the checkout on the path as in the other CLI tests.
    # No persistent compilation cache: the first request must compile, so that it is still in flight at SIGTERM.
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(XLA_FLAGS="", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            if "serving 'smollm2_135m' on http://127.0.0.1:" in line:
                ready.set()
        ready.set()  # the process exited: stop waiting

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(STARTUP_TIMEOUT_S) and process.poll() is None, "".join(output[-40:])
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["smollm2_135m"]
        result = {}

        def ask() -> None:
            result["reply"] = client.chat.completions.create(
                model="smollm2_135m", messages=[{"role": "user", "content": "What is 2+2?"}], temperature=0, max_tokens=24
            )

        asker = threading.Thread(target=ask)
        asker.start()
        time.sleep(2.0)  # the first request compiles for longer than this: it is in flight at SIGTERM
        assert asker.is_alive()
        process.send_signal(signal.SIGTERM)
        asker.join(300)
        reply = result["reply"]
        assert "4" in reply.choices[0].message.content
        assert reply.usage.completion_tokens > 0
        assert process.wait(120) == 0, "".join(output[-40:])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
