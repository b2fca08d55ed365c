"""A SIMULATED executor for experiments: an OpenAI-compatible endpoint whose replies follow a documented
model of an LLM executor (simulated_model.py) in which strategy matters and wording does not.

It is a simulation, not a language model: it knows each problem's gold reply, and answers a call
right with a chance set by the call's strategy features (reason, program, verify, repair) and the
problem's latent difficulty. Its randomness is keyed by (experiment seed, problem, features, given
answer, sample index), so a paraphrase is not a new coin and two workflows with the same strategy
see the same draws. Reply texts follow one template whether right or wrong. Every reply names the
model `simulated-executor`. This module is its command line and launcher; what it answers is
`SimulatedExecutor` (simulated_replier.py).

Subprocess:  `python -m w4s_jax.executor.simulated --port 0 --task gsm8k --data-dir package:w4s-jax --seed 0`
             prints its URL on the first line of stdout and serves until killed.
In-process:  `with simulated_executor("gsm8k", "package:w4s-jax", seed=0) as url: ...`
Calibrate:   `python -m w4s_jax.executor.simulated calibrate --task gsm8k --data-dir DIR --limit 50`
             (simulated_calibrate.py) prints the built-in workflows' simulated scores beside AFlow's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator, Sequence

from w4s_jax.executor.simulated_replier import DEFAULT_SPLITS, MODEL_NAME, SimulatedExecutor, build_problems
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint, spawn


@contextlib.contextmanager
def simulated_executor(task_name: str, data_dir: str, seed: int, *, splits: Sequence[str] = DEFAULT_SPLITS,
                       task_seed: int = 0) -> Iterator[str]:
    """Serves the simulated executor for `task_name` from a subprocess on loopback; yields its base URL."""
    process, url = spawn(["--task", task_name, "--data-dir", str(data_dir), "--seed", str(seed),
                          "--splits", ",".join(splits), "--task-seed", str(task_seed)],
                         module="w4s_jax.executor.simulated", timeout_s=120.0)
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["calibrate"]:
        from w4s_jax.executor.simulated_calibrate import main as calibrate

        calibrate(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m w4s_jax.executor.simulated",
        description="A SIMULATED executor for experiments (not a language model): an OpenAI-compatible endpoint "
                    "whose answers follow a documented model where strategy matters and wording does not. "
                    "`calibrate --help` for the command that compares it with published GPT-4o-mini scores.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (the URL is printed)")
    parser.add_argument("--task", required=True, help="task name, e.g. gsm8k or humaneval")
    parser.add_argument("--data-dir", required=True, help="the task's data location, e.g. package:w4s-jax")
    parser.add_argument("--seed", type=int, default=0, help="experiment seed: difficulties and every draw")
    parser.add_argument("--splits", default=",".join(DEFAULT_SPLITS), help="comma-separated splits it knows")
    parser.add_argument("--task-seed", type=int, default=0, help="the task's split seed (single-file sets)")
    args = parser.parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    try:
        problems = build_problems(args.task, args.data_dir, args.seed, splits, args.task_seed)
    except (KeyError, ValueError, OSError) as error:
        parser.exit(2, f"simulated executor: {error}\n")
    endpoint = StandInEndpoint(SimulatedExecutor(problems, args.seed), model=MODEL_NAME, host=args.host,
                               port=args.port, name_in_replies=True)

    async def serve() -> None:
        print(await endpoint.start(), flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
