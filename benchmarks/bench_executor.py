"""Executor-call throughput against the TestEndpoint with a fixed latency, as a fraction of ideal.

Ideal throughput = concurrency / latency: every slot always busy waiting on the endpoint. Measured:
the async ExecutorClient (cache, budget and accounting on, as in a run) at concurrency 64 and 256
over both HTTP transports (the openai SDK, and direct aiohttp), and, in the same run, a pool of 48 threads calling the synchronous `openai` client (how the W4S
reference implementation calls its executor). The endpoint runs in a separate process so that the
measured client does not share an event loop or a GIL with the server.

`run(quick)` returns JSON-safe results with markdown-table rows; `python benchmarks/bench_executor.py
[--quick]` prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
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
from w4s_jax.executor.test_endpoint import spawn

LATENCY_MS = 100.0


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def _async_client_throughput(url: str, transport: str, concurrency: int, calls: int, cache_dir: str) -> float:
    client = ExecutorClient(base_urls=[url], model="test-executor", max_concurrency=concurrency,
                            cache_path=pathlib.Path(cache_dir) / f"bench_{transport}_{concurrency}.sqlite",
                            budget_usd=1.0, max_tokens=64, transport=transport)
    warm = [client.call_llm(messages=[{"role": "user", "content": f"warm {i}"}]) for i in range(concurrency)]
    await asyncio.gather(*warm)
    start = time.perf_counter()
    work = [client.call_llm(messages=[{"role": "user", "content": f"question {transport} {concurrency}-{i}"}])
            for i in range(calls)]
    await asyncio.gather(*work)
    elapsed = time.perf_counter() - start
    await client.aclose()
    return calls / elapsed


def _thread_pool_throughput(url: str, threads: int, calls: int) -> float:
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
    counter = iter(range(calls + threads))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter)
            if index >= calls:
                return
            client.chat.completions.create(model="test-executor", max_tokens=64,
                                           messages=[{"role": "user", "content": f"sync question {index}"}])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: client.chat.completions.create(
            model="test-executor", messages=[{"role": "user", "content": "warm"}]), range(threads)))
        start = time.perf_counter()
        futures = [pool.submit(worker) for _ in range(threads)]
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    client.close()
    return calls / elapsed


def run(quick: bool = False) -> dict:
    """Runs the benchmark; JSON-safe results plus markdown rows (`rows`, `header`)."""
    rounds = 4 if quick else 10
    process, url = spawn(["--latency-ms", str(LATENCY_MS)])
    server, me = psutil.Process(process.pid), psutil.Process()
    results = []

    def measure(client: str, concurrency: int, calls: int, call: object) -> None:
        """Runs `call()` -> calls/s and records it with the CPU both sides spent per call."""
        server_cpu, client_cpu = _cpu_seconds(server), _cpu_seconds(me)
        rate = call()
        ideal = concurrency / (LATENCY_MS / 1000)
        results.append({
            "client": client, "concurrency": concurrency, "calls": calls, "calls_per_s": rate,
            "ideal_calls_per_s": ideal, "fraction_of_ideal": rate / ideal,
            # warm-up calls included: an upper bound on the CPU per call. CPU per call shows where the
            # limit lies on a busy machine: 1000 / (ms per call) is the calls/s one core can drive.
            "client_cpu_ms_per_call": 1000 * (_cpu_seconds(me) - client_cpu) / calls,
            "server_cpu_ms_per_call": 1000 * (_cpu_seconds(server) - server_cpu) / calls,
        })

    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            for transport in ("openai", "aiohttp"):
                for concurrency in (64, 256):
                    calls = concurrency * rounds
                    measure(f"ExecutorClient, {transport} transport", concurrency, calls,
                            lambda t=transport, c=concurrency, k=calls: asyncio.run(
                                _async_client_throughput(url, t, c, k, cache_dir)))
        threads = 48
        measure("openai sync client, 48 threads (reference style)", threads, threads * rounds,
                lambda: _thread_pool_throughput(url, threads, threads * rounds))
    finally:
        process.kill()
        process.wait(10)
    header = ("| client | concurrency | calls | calls/s | ideal calls/s | fraction of ideal | "
              "client CPU ms/call | server CPU ms/call |\n|---|---|---|---|---|---|---|---|")
    rows = [f"| {r['client']} | {r['concurrency']} | {r['calls']} | {r['calls_per_s']:.0f} | "
            f"{r['ideal_calls_per_s']:.0f} | {r['fraction_of_ideal']:.2f} | {r['client_cpu_ms_per_call']:.2f} | "
            f"{r['server_cpu_ms_per_call']:.2f} |" for r in results]
    at_256 = [r["fraction_of_ideal"] for r in results if r["concurrency"] == 256]
    return {"name": "executor_throughput", "latency_ms": LATENCY_MS, "cpu_count": os.cpu_count(),
            "target": ">= 0.90 of ideal at concurrency 256", "meets_target": max(at_256) >= 0.9,
            "load_average_1min": os.getloadavg()[0], "quick": quick, "results": results,
            "header": header, "rows": rows}


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
