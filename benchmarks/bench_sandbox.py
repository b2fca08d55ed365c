"""Sandbox overhead: added time per sample with warm workers vs in-process `exec`, and workflow start-up.

The reference implementation runs a workflow with `exec` inside the trainer's process. Here the same
workflow (two agent LLM calls answered after a fixed latency, as an executor would) runs (a) that
way, with a local agent, and (b) in the sandbox: a confined warm worker, the agent proxied over the
pipe to the parent's handler. Samples run one at a time after the pool has refilled, alternating
(a) and (b) so both see the same machine load; the median of the paired differences is the
sandbox's added latency per sample (the 1-minute load average is reported with it). Start-up is measured in the
same run: the time from `run_workflow` to the solver's first line (warm pool), and the time to
spawn and confine one cold worker. Targets: <= 5 ms added per sample, <= 50 ms workflow start-up.

`run(quick)` returns JSON-safe results with markdown-table rows; `python benchmarks/bench_sandbox.py
[--quick]` prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.sandbox.agent_proxy import Agent
from w4s_jax.sandbox.pool import spawn

LATENCY_S = 0.02
WORKFLOW = '''
import time

def solver(agent, task):
    started = time.time()
    first = agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.0)[0]
    second = agent.call_json_format_llm(messages=[{"role": "user", "content": first}],
                                        return_dict_keys=["reasoning", "answer"])[0]
    return {"answer": {"text": second["answer"], "started": started}}
'''


async def _handler(method: str, kwargs: dict, scope: str) -> object:
    await asyncio.sleep(LATENCY_S)
    content = kwargs["messages"][-1]["content"]
    if method == "call_json_format_llm":
        return [{key: content for key in kwargs["return_dict_keys"]}]
    return [content]


def _in_process_agent() -> Agent:
    """The reference way: the agent calls the (synchronous) executor from the workflow's thread."""

    def call(method: str, kwargs: dict) -> object:
        time.sleep(LATENCY_S)
        content = kwargs["messages"][-1]["content"]
        if method == "call_json_format_llm":
            return [{key: content for key in kwargs["return_dict_keys"]}]
        return [content]

    return Agent(call, [], "")


def _in_process_sample(task: str) -> float:
    started = time.perf_counter()
    namespace: dict = {}
    exec(compile(WORKFLOW, "<workflow>", "exec"), namespace)
    namespace["solver"](_in_process_agent(), task)
    return time.perf_counter() - started


async def _settle(sandbox: Sandbox) -> None:
    await sandbox.pool.settled()


async def _paired_samples(samples: int) -> tuple[list[float], list[float], list[float], tuple[str, ...]]:
    """Alternates one in-process sample and one sandboxed sample, so both see the same machine load."""
    settings = SandboxSettings(workers=2, sample_timeout_s=30.0)
    in_process, walls, startups = [], [], []
    async with Sandbox(settings, _handler) as sandbox:
        await _settle(sandbox)
        for i in range(samples + 1):
            reference = _in_process_sample(f"task {i}")
            called = time.time()
            started = time.perf_counter()
            result = (await sandbox.run_workflow(WORKFLOW, [f"task {i}"]))[0]
            wall = time.perf_counter() - started
            if result.error is not None:
                raise RuntimeError(f"benchmark workflow failed in the sandbox: {result.error}")
            if i:  # the first pair warms both code paths
                in_process.append(reference)
                walls.append(wall)
                startups.append(result.answer["started"] - called)
            await _settle(sandbox)
        layers = sandbox.layers
    return in_process, walls, startups, layers


async def _cold_spawns(count: int) -> list[float]:
    settings = SandboxSettings()
    sandbox = Sandbox(settings)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        worker = await spawn(sandbox.pool.spec)
        times.append(time.perf_counter() - started)
        await worker.destroy()
    return times


def run(quick: bool = False) -> dict:
    samples = 10 if quick else 40
    in_process, walls, startups, layers = asyncio.run(_paired_samples(samples))
    cold = asyncio.run(_cold_spawns(3 if quick else 8))
    added_ms = statistics.median(w - r for w, r in zip(walls, in_process)) * 1e3
    startup_ms = statistics.median(startups) * 1e3
    rows = [
        {"measure": "in-process exec, per sample (2 calls x 20 ms latency)", "median_ms": round(statistics.median(in_process) * 1e3, 2)},
        {"measure": "sandbox, warm worker, per sample", "median_ms": round(statistics.median(walls) * 1e3, 2)},
        {"measure": "added per sample by the sandbox, median of paired differences (target <= 5 ms)",
         "median_ms": round(added_ms, 2)},
        {"measure": "workflow start-up: run_workflow -> solver's first line, warm (target <= 50 ms)", "median_ms": round(startup_ms, 2)},
        {"measure": "cold worker: spawn + confine (hidden by the warm pool)", "median_ms": round(statistics.median(cold) * 1e3, 2)},
    ]
    return {
        "samples": samples,
        "load_average_1m": os.getloadavg()[0],
        "latency_ms_per_call": LATENCY_S * 1e3,
        "added_ms_per_sample": added_ms,
        "workflow_startup_ms": startup_ms,
        "cold_worker_ms": statistics.median(cold) * 1e3,
        "meets_targets": added_ms <= 5.0 and startup_ms <= 50.0,
        "sandbox_layers": list(layers),
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = ["| measure | median ms |", "|---|---|"]
    lines += [f"| {row['measure']} | {row['median_ms']} |" for row in result["rows"]]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the JSON result too")
    args = parser.parse_args()
    outcome = run(quick=args.quick)
    print(markdown(outcome))
    if args.json:
        print(json.dumps(outcome, indent=1))
