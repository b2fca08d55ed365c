"""A W4S run on several hosts (the in-process sampler under multi-controller JAX).

Each host runs its share of the rollouts (`host_share`) and keeps its own journal, archive,
executor cache and report under `output_dir/host<i>`, so no file is written by two processes and no
shared filesystem is needed. Generation is collective (`policy.SamplerPolicy`); what else has to be
run-wide is gathered here: the final choice per task (by validation score across all hosts' rollouts,
earliest rollout on ties), its one test score (measured by the host that ran it), and the
trajectories, which every host writes whole, so RLAO training on any host reads them all.
On one host every function here is the identity.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from w4s_jax.parallel.distributed import allgather_json
from w4s_jax.w4s.report import BestWorkflow

T = TypeVar("T")


def host_share(items: Sequence[T], process_index: int, process_count: int) -> list[T]:
    """The rollouts one host runs (round-robin); every host contributes its own rollouts' prompts."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    return [item for position, item in enumerate(items) if position % process_count == process_index]


def host_output_dir(output_dir: pathlib.Path, process_index: int, process_count: int) -> pathlib.Path:
    return output_dir if process_count == 1 else output_dir / f"host{process_index}"


def first_reason(reason: str) -> str:
    """The first host's non-empty stop reason (a budget stop anywhere stops the test scoring everywhere)."""
    return next((r for r in allgather_json(reason) if r), "")


def gather_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every host's records, in host order."""
    return [record for host in allgather_json(records) for record in host]


async def choose_across_hosts(
    local: list[tuple[int, BestWorkflow]],
    process_index: int,
    score_on_test: Callable[[BestWorkflow], Awaitable[BestWorkflow]] | None,
) -> list[BestWorkflow]:
    """The run's final workflow per task from each host's own choices (`(plan position, choice)`),
    each scored on test once, by the host whose rollout it came from, when `score_on_test` is given."""
    hosts = allgather_json([[position, dataclasses.asdict(choice)] for position, choice in local])
    best: dict[str, tuple[int, int, BestWorkflow]] = {}
    for host, choices in enumerate(hosts):
        for position, fields in choices:
            choice = BestWorkflow(**fields)
            held = best.get(choice.task)
            if held is None or (choice.val_score, -position) > (held[2].val_score, -held[1]):
                best[choice.task] = (host, position, choice)
    mine = {task for task, (host, _, _) in best.items() if host == process_index}
    scored = {task: await score_on_test(choice) if score_on_test and task in mine else choice
              for task, (_, _, choice) in best.items()}
    tests = allgather_json({task: choice.test_score for task, choice in scored.items() if task in mine})
    return [dataclasses.replace(choice, test_score=tests[host][task] if score_on_test else None)
            for task, (host, _, choice) in best.items()]
