"""Streaming and continuous batching of `w4s-jax serve`, measured through the official openai client.

A real `w4s-jax serve` subprocess (SmolLM2-135M-Instruct from the shipped GGUF, one CPU device) on
loopback. Every scenario runs once to compile its programs, then `repeats` times, the scenarios'
repeats interleaved (so load drifting on a shared machine hits every figure alike); each figure is
the minimum over the repeats, and each ratio compares figures of the same run.

1. Time to first token: one greedy request of `new_tokens` tokens, streamed (time to the first
   chunk with text) and not streamed (time to the whole reply). Ratio = TTFT / non-streamed latency.
2. Continuous batching: a long streamed request (`long_tokens`) runs; when its first text arrives a
   short request (`short_tokens`, not streamed) is sent. Its latency is compared with the same short
   request on an idle server, and with what is left of the long request when it is sent (what it would
   wait for in a server that runs one batch to completion before starting the next).

Both with the default 4 decode steps per compiled call and (full run only) with 1: the figures show
what a compiled call per token costs on XLA:CPU. For reference, the same greedy reply from the batch
path in this process (`Sampler.generate`: prefill and one decode call for the whole reply, no HTTP),
timed between the served requests.

`run(quick)` returns JSON-safe results with markdown rows; `python benchmarks/bench_serving.py [--quick]`
prints the table.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import openai

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.models import smollm2_gguf_path

REPO = pathlib.Path(__file__).resolve().parents[1]
MODEL = "smollm2_135m"
STORY = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper and a storm."}]
SHORT = [{"role": "user", "content": "What is the capital of France?"}]
STARTUP_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`w4s-jax serve` in a subprocess on a free loopback port; stopped with SIGTERM on exit."""

    def __init__(self, steps_per_call: int) -> None:
        self.port = _free_port()
        self.command = [
            str(pathlib.Path(sys.executable).parent / "w4s-jax"), "serve", "--config=configs/serve.py",
            f"--config.model.preset={MODEL}", f"--config.model.path={smollm2_gguf_path()}",
            "--config.host=127.0.0.1", f"--config.port={self.port}", f"--config.steps_per_call={steps_per_call}",
        ]
        self.env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
        self.output: list[str] = []

    def __enter__(self) -> openai.OpenAI:
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if f"on http://127.0.0.1:{self.port}" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_S) or self.process.poll() is not None:
            self.__exit__()
            raise RuntimeError("w4s-jax serve did not start:\n" + "".join(self.output[-30:]))
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="unused", max_retries=0, timeout=900)

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _whole(client: openai.OpenAI, messages: list[dict], max_tokens: int) -> tuple[float, int]:
    """(seconds, completion tokens) of one non-streamed greedy request."""
    start = time.perf_counter()
    reply = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens)
    return time.perf_counter() - start, reply.usage.completion_tokens


def _streamed(client: openai.OpenAI, messages: list[dict], max_tokens: int,
              on_first_text=lambda: None) -> tuple[float, float, int]:
    """(seconds to the first chunk with text, seconds to the end, chunks with text) of one streamed request."""
    start = time.perf_counter()
    first, chunks = None, 0
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens,
                                                stream=True):
        if any(choice.delta.content for choice in chunk.choices):
            chunks += 1
            if first is None:
                first = time.perf_counter() - start
                on_first_text()
    return first, time.perf_counter() - start, chunks


def _late_short_request(client: openai.OpenAI, long_tokens: int, short_tokens: int) -> dict[str, float]:
    """The short request sent when the long stream's first text arrives; both timed."""
    short: dict[str, float] = {}
    threads: list[threading.Thread] = []

    def send_short() -> None:
        def ask() -> None:
            short["sent_at"] = time.perf_counter()
            short["latency_s"], short["tokens"] = _whole(client, SHORT, short_tokens)
            short["done_at"] = time.perf_counter()

        threads.append(threading.Thread(target=ask))
        threads[0].start()

    started = time.perf_counter()
    _, total, _ = _streamed(client, STORY, long_tokens, send_short)
    long_done = started + total
    threads[0].join()
    return {"short_latency_s": short["latency_s"], "long_left_when_sent_s": long_done - short["sent_at"],
            "short_done_before_long_s": long_done - short["done_at"], "short_tokens": short["tokens"]}


def _measure(steps_per_call: int, repeats: int, new_tokens: int, long_tokens: int, short_tokens: int,
             in_process=None) -> dict:
    """Both scenarios on one server, their repeats interleaved so that load drifting on a shared machine
    hits each figure alike; every scenario runs once first so its programs are compiled. `in_process`
    (a callable) is timed interleaved with the non-streamed request."""
    with ServeProcess(steps_per_call) as client:
        _whole(client, STORY, new_tokens)
        _streamed(client, STORY, new_tokens)
        _whole(client, SHORT, short_tokens)
        _late_short_request(client, long_tokens, short_tokens)
        if in_process is not None:
            in_process()
        whole, streamed, short_alone, late, local = [], [], [], [], []
        for _ in range(repeats):
            whole.append(_whole(client, STORY, new_tokens))
            streamed.append(_streamed(client, STORY, new_tokens))
            if in_process is not None:
                start = time.perf_counter()
                in_process()
                local.append(time.perf_counter() - start)
            short_alone.append(_whole(client, SHORT, short_tokens)[0])
            late.append(_late_short_request(client, long_tokens, short_tokens))
    latency = min(seconds for seconds, _ in whole)
    ttft = min(first for first, _, _ in streamed)
    best_late = min(late, key=lambda r: r["short_latency_s"])
    measured = {
        "reply_tokens": whole[0][1],
        "nonstreamed_latency_s": latency,
        "ttft_s": ttft,
        "streamed_total_s": min(total for _, total, _ in streamed),
        "streamed_text_chunks": streamed[0][2],
        "ttft_over_latency": ttft / latency,
        "short_alone_s": min(short_alone),
        **best_late,
        "short_during_long_over_alone": best_late["short_latency_s"] / min(short_alone),
        "short_during_long_over_long_left": best_late["short_latency_s"] / best_late["long_left_when_sent_s"],
    }
    if local:
        measured["in_process_generate_s"] = min(local)
    return measured


def _rows(k: int, r: dict, long_tokens: int) -> list[dict]:
    latency = r["nonstreamed_latency_s"]
    return [
        {"steps/call": k, "measure": f"greedy reply, {r['reply_tokens']} tokens, not streamed",
         "seconds": f"{latency:.2f}", "ratio": "1.00"},
        {"steps/call": k, "measure": "same request streamed: time to first token", "seconds": f"{r['ttft_s']:.3f}",
         "ratio": f"{r['ttft_over_latency']:.3f} of the non-streamed latency"},
        {"steps/call": k, "measure": f"same request streamed: to the last chunk ({r['streamed_text_chunks']} chunks with text)",
         "seconds": f"{r['streamed_total_s']:.2f}", "ratio": f"{r['streamed_total_s'] / latency:.2f}"},
        {"steps/call": k, "measure": f"short request ({r['short_tokens']} tokens) on an idle server",
         "seconds": f"{r['short_alone_s']:.2f}", "ratio": "1.00"},
        {"steps/call": k, "measure": f"same short request sent while a {long_tokens}-token stream runs",
         "seconds": f"{r['short_latency_s']:.2f}",
         "ratio": f"{r['short_during_long_over_alone']:.2f} of idle; {r['short_during_long_over_long_left']:.2f} of the "
                  f"long request's remaining {r['long_left_when_sent_s']:.2f} s"},
    ]


def run(quick: bool = False) -> dict:
    """TTFT vs non-streamed latency, and a late short request's latency while a long one runs; with the
    default 4 decode steps per call and (full run) with 1; and the batch path in process for reference."""
    repeats = 1 if quick else 5
    new_tokens, long_tokens, short_tokens = (32, 64, 8) if quick else (64, 160, 16)
    results: dict = {"name": "serving_smollm2_135m", "quick": quick, "repeats": repeats, "new_tokens": new_tokens,
                     "long_tokens": long_tokens, "short_tokens": short_tokens, "cpu_count": os.cpu_count(), "rows": []}
    generate = _in_process_generate(new_tokens)
    for k in (4,) if quick else (4, 1):
        measured = _measure(k, repeats, new_tokens, long_tokens, short_tokens, generate if k == 4 else None)
        results[f"steps_per_call_{k}"] = measured
        results["rows"] += _rows(k, measured, long_tokens)
    served, local = results["steps_per_call_4"]["nonstreamed_latency_s"], results["steps_per_call_4"]["in_process_generate_s"]
    results["rows"].append({"steps/call": "-", "measure": "same greedy reply in process: Sampler.generate (one decode "
                            "call for the whole reply, no HTTP), interleaved with the served one",
                            "seconds": f"{local:.2f}", "ratio": f"served (4 steps/call) / in process = {served / local:.2f}"})
    return results


def _in_process_generate(new_tokens: int):
    """A callable running the batch path (prefill + one decode call) on the same model, prompt and length."""
    import jax

    from w4s_jax.models import load_model
    from w4s_jax.parallel.mesh import make_mesh
    from w4s_jax.sampling.chat import ChatTokenizer
    from w4s_jax.sampling.params import SamplingParams
    from w4s_jax.sampling.sampler import Sampler

    mesh = make_mesh(1, 1, 1, devices=jax.devices("cpu")[:1])
    _, model = load_model(MODEL, smollm2_gguf_path(), mesh=mesh)
    sampler = Sampler(model, ChatTokenizer.from_path(smollm2_gguf_path()), mesh, max_prompt_len=4096, max_batch=16)
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0)
    return lambda: sampler.generate_chat([STORY], params)


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__, "fewer tokens, one repeat")
