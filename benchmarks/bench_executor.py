"""Executor-call throughput against the StandInEndpoint with a fixed latency, as a fraction of ideal.

Ideal throughput = concurrency / latency: every slot always busy waiting on the endpoint. Measured:
the async ExecutorClient (cache, budget and accounting on, as in a run) at concurrency 64 and 256
over both HTTP transports (the openai SDK, and direct aiohttp), and, in the same run, a pool of 48
threads calling the synchronous `openai` client (how the W4S reference implementation calls its
executor). Both are closed loops: `concurrency` workers (coroutines or threads) each send their next
call as soon as the last one returns, over warm connections; what counts is the steady state, the
calls completed in a 4 s window that opens 1 s after the workers start (`Timing`). The endpoint runs in a separate process so that the measured client does not share
an event loop or a GIL with the server.

`run(quick)` returns JSON-safe results with markdown-table rows; `python benchmarks/bench_executor.py
[--quick]` prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import sys
import tempfile
import threading
import time

import openai
import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.stand_in_endpoint import spawn

LATENCY_MS = 100.0


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@dataclasses.dataclass(frozen=True)
class Timing:
    """The steady-state window: calls completed and CPU spent from `ramp_s` after the workers start
    until `window_s` later; connection set-up and the first burst fall before it, the drain after."""

    server: psutil.Process
    ramp_s: float
    window_s: float

    def snapshot(self, completed: int) -> tuple[float, int, float, float]:
        return time.perf_counter(), completed, _cpu_seconds(psutil.Process()), _cpu_seconds(self.server)

    @staticmethod
    def result(first: tuple[float, int, float, float], last: tuple[float, int, float, float]) -> dict[str, float]:
        seconds, calls = last[0] - first[0], last[1] - first[1]
        return {"calls": calls, "calls_per_s": calls / seconds,
                "client_cpu_ms_per_call": 1000 * (last[2] - first[2]) / calls,
                "server_cpu_ms_per_call": 1000 * (last[3] - first[3]) / calls}


async def _async_client_window(url: str, transport: str, concurrency: int, cache_dir: str,
                               timing: Timing) -> dict[str, float]:
    client = ExecutorClient(base_urls=[url], model="test-executor", max_concurrency=concurrency,
                            cache_path=pathlib.Path(cache_dir) / f"bench_{transport}_{concurrency}.sqlite",
                            budget_usd=1.0, max_tokens=64, transport=transport)
    warm = [client.call_llm(messages=[{"role": "user", "content": f"warm {i}"}]) for i in range(concurrency)]
    await asyncio.gather(*warm)
    completed, stop = 0, False

    async def worker(slot: int) -> None:
        nonlocal completed
        index = 0
        while not stop:
            await client.call_llm(messages=[{"role": "user", "content": f"question {transport} {slot}-{index}"}])
            index, completed = index + 1, completed + 1

    workers = [asyncio.create_task(worker(slot)) for slot in range(concurrency)]
    await asyncio.sleep(timing.ramp_s)
    first = timing.snapshot(completed)
    await asyncio.sleep(timing.window_s)
    last = timing.snapshot(completed)
    stop = True
    await asyncio.gather(*workers)
    await client.aclose()
    return timing.result(first, last)


def _thread_pool_window(url: str, threads: int, timing: Timing) -> dict[str, float]:
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
    completed, lock, stop = 0, threading.Lock(), threading.Event()

    def worker(slot: int) -> None:
        nonlocal completed
        index = 0
        while not stop.is_set():
            client.chat.completions.create(model="test-executor", max_tokens=64,
                                           messages=[{"role": "user", "content": f"sync question {slot}-{index}"}])
            index += 1
            with lock:
                completed += 1

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: client.chat.completions.create(
            model="test-executor", messages=[{"role": "user", "content": "warm"}]), range(threads)))
        futures = [pool.submit(worker, slot) for slot in range(threads)]
        time.sleep(timing.ramp_s)
        first = timing.snapshot(completed)
        time.sleep(timing.window_s)
        last = timing.snapshot(completed)
        stop.set()
        for future in futures:
            future.result()
    client.close()
    return timing.result(first, last)


def run(quick: bool = False) -> dict:
    """Runs the benchmark; JSON-safe results plus markdown rows (`rows`, `header`)."""
    process, url = spawn(["--latency-ms", str(LATENCY_MS)])
    timing = Timing(psutil.Process(process.pid), ramp_s=0.5 if quick else 1.0, window_s=1.0 if quick else 4.0)
    results = []

    def record(client: str, concurrency: int, measured: dict[str, float]) -> None:
        ideal = concurrency / (LATENCY_MS / 1000)
        results.append({"client": client, "concurrency": concurrency, **measured, "ideal_calls_per_s": ideal,
                        "fraction_of_ideal": measured["calls_per_s"] / ideal})

    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            for transport in ("openai", "aiohttp"):
                for concurrency in (64, 256):
                    record(f"ExecutorClient, {transport} transport", concurrency, asyncio.run(
                        _async_client_window(url, transport, concurrency, cache_dir, timing)))
        threads = 48
        record(f"openai sync client, {threads} threads (reference style)", threads,
               _thread_pool_window(url, threads, timing))
    finally:
        process.kill()
        process.wait(10)
    header = ("| client | concurrency | calls in window | calls/s | ideal calls/s | fraction of ideal | "
              "client CPU ms/call | server CPU ms/call |\n|---|---|---|---|---|---|---|---|")
    rows = [f"| {r['client']} | {r['concurrency']} | {r['calls']} | {r['calls_per_s']:.0f} | "
            f"{r['ideal_calls_per_s']:.0f} | {r['fraction_of_ideal']:.2f} | {r['client_cpu_ms_per_call']:.2f} | "
            f"{r['server_cpu_ms_per_call']:.2f} |" for r in results]
    at_256 = [r["fraction_of_ideal"] for r in results if r["concurrency"] == 256]
    return {"name": "executor_throughput", "latency_ms": LATENCY_MS, "cpu_count": os.cpu_count(),
            "window_s": timing.window_s, "target": ">= 0.90 of ideal at concurrency 256",
            "meets_target": max(at_256) >= 0.9, "load_average_1min": os.getloadavg()[0], "quick": quick,
            "results": results, "header": header, "rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    arguments = parser.parse_args()
    outcome = run(quick=arguments.quick)
    if arguments.json:
        print(json.dumps(outcome, indent=2))
    else:
        print(f"executor throughput, {outcome['latency_ms']:.0f} ms endpoint latency, {outcome['cpu_count']} CPUs, "
              f"load average {outcome['load_average_1min']:.1f}\n")
        print(outcome["header"])
        print("\n".join(outcome["rows"]))
