"""`python -m w4s_jax.executor.simulated calibrate`: the built-in workflows' scores with the SIMULATED
executor beside the published GPT-4o-mini figures its default rates are calibrated to.

Each workflow runs for real: in the sandbox, its calls through an ExecutorClient over HTTP on loopback
to the simulated executor; numeric answers are scored by the task, programs by the hidden tests in
the sandbox. Published figures: AFlow (Zhang et al., ICLR 2025) Table 1, GPT-4o-mini executor; the
HumanEval repair row is W4S's (Nie et al., COLM 2025) best workflow with test feedback, the nearest
published figure for a workflow that repairs from the public tests.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from w4s_jax.executor.simulated_replier import MODEL_NAME, SimulatedExecutor, build_problems
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint

IO_WORKFLOW = '''"""IO: one call that asks for the answer only (no reasoning)."""


def solver(agent, task):
    reply = agent.call_json_format_llm(messages=[{"role": "user", "content": task}], temperature=0.0,
                                       agent_role="task solver", return_dict_keys=["answer"])[0]
    return {"answer": reply.get("answer", "")}
'''
PUBLISHED: dict[str, dict[str, float]] = {  # task -> workflow -> published score (%)
    "gsm8k": {"io": 92.7, "cot": 92.4, "cot_sc": 92.7, "self_refine": 89.6},
    "humaneval": {"io": 87.0, "cot": 88.6, "cot_sc": 91.6, "self_refine": 87.8, "code_writer": 95.4},
    "math": {"cot": 48.8, "cot_sc": 50.4, "self_refine": 46.1},
}
WORKFLOWS = {  # per kind of task; code_generation is program-of-thought (no AFlow row)
    "numeric": ("io", "cot", "cot_sc", "self_refine", "code_generation"),
    "code": ("io", "cot", "cot_sc", "self_refine", "code_writer"),
    "text": ("io", "cot", "cot_sc", "self_refine"),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a workflow's simulated score and the published one (None if none)."""

    workflow: str
    simulated: float
    published: float | None
    errors: int


async def calibrate(task_name: str, data_dir: str, seed: int, split: str = "validate", limit: int = 0,
                    workflows: tuple[str, ...] = (), task_seed: int = 0, workers: int = 8) -> list[Row]:
    """Runs each workflow on the first `limit` problems of `split` (0 = all) against the simulator."""
    from w4s_jax.executor.client import ExecutorClient
    from w4s_jax.sandbox import SampleContext, Sandbox, SandboxSettings
    from w4s_jax.tasks import get_task
    from w4s_jax.workflows import builtin_source

    task = get_task(task_name, task_seed)
    examples = task.load(split, data_dir, limit)
    problems = build_problems(task_name, data_dir, seed, (split,), task_seed)
    replier = SimulatedExecutor(problems, seed)
    kind = next(iter(problems)).kind
    names = workflows or WORKFLOWS[kind]
    rows = []
    async with StandInEndpoint(replier, model=MODEL_NAME, name_in_replies=True) as endpoint:
        client = ExecutorClient(base_urls=[endpoint.url], model=MODEL_NAME, budget_usd=1e9, transport="aiohttp")

        async def handle(method: str, kwargs: dict, scope: str) -> object:
            if method == "call_llm":
                return await client.call_llm(**kwargs, scope=scope)
            if method == "call_json_format_llm":
                return await client.call_json_format_llm(**kwargs, scope=scope)
            raise ValueError(f"unknown agent method {method!r}")

        contexts = [SampleContext(tuple(e.meta.get("public_tests", ()) or ()), str(e.meta.get("entry_point", "")))
                    for e in examples]
        try:
            async with Sandbox(SandboxSettings(workers=workers), handle) as sandbox:
                for name in names:
                    source = IO_WORKFLOW if name == "io" else builtin_source(name)
                    results = await sandbox.run_workflow(source, [e.question for e in examples],
                                                         [e.id for e in examples], contexts)
                    scores = [await _score(task, example, result, sandbox) for example, result in zip(examples, results)]
                    rows.append(Row(name, 100.0 * sum(scores) / len(scores), PUBLISHED.get(task_name, {}).get(name),
                                    sum(1 for r in results if r.error is not None)))
        finally:
            await client.aclose()
    return rows


async def _score(task, example, result, sandbox) -> float:
    """1.0 for a right answer: the task's scorer, or the hidden tests run in the sandbox (code)."""
    if result.error is not None:
        return 0.0
    if task.is_code:
        verdict = await task.run_hidden_tests(result.answer, example, sandbox.run_code, 30.0)
        return 1.0 if verdict.passed else 0.0
    return float(task.score(result.answer, example))


def render(rows: list[Row]) -> str:
    """The table: workflow, simulated, published, difference (points)."""
    lines = [f"{'workflow':<16}{'simulated':>10}{'published':>11}{'difference':>12}{'errors':>8}"]
    for row in rows:
        published = "-" if row.published is None else f"{row.published:.1f}"
        difference = "-" if row.published is None else f"{row.simulated - row.published:+.1f}"
        lines.append(f"{row.workflow:<16}{row.simulated:>10.1f}{published:>11}{difference:>12}{row.errors:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m w4s_jax.executor.simulated calibrate",
        description="Score the built-in workflows with the SIMULATED executor (in the sandbox, over HTTP on "
                    "loopback) and print them beside the published GPT-4o-mini figures (AFlow Table 1).")
    parser.add_argument("--task", required=True, help="gsm8k, humaneval, math, ...")
    parser.add_argument("--data-dir", required=True, help="the task's data location, e.g. package:w4s-jax")
    parser.add_argument("--seed", type=int, default=0, help="the simulator's experiment seed")
    parser.add_argument("--split", default="validate")
    parser.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    parser.add_argument("--workflows", default="", help="comma-separated subset (io = answer only, no reasoning)")
    parser.add_argument("--task-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error(f"--limit must be >= 0, got {args.limit}")
    workflows = tuple(w.strip() for w in args.workflows.split(",") if w.strip())
    started = time.monotonic()
    try:
        rows = asyncio.run(calibrate(args.task, args.data_dir, args.seed, args.split, args.limit, workflows,
                                     args.task_seed))
    except (KeyError, ValueError, OSError) as error:
        parser.exit(2, f"calibrate: {error}\n")
    print(f"simulated executor (a simulation, not an LLM), task {args.task} split {args.split}, seed {args.seed}, "
          f"{args.limit or 'all'} problems; published: GPT-4o-mini, AFlow Table 1 (code_writer: W4S, repair)")
    print(render(rows))
    print(f"({time.monotonic() - started:.0f} s)")
