"""Multi-host start-up: `init_distributed()` joins jax.distributed when the environment says so.

Every host runs the same program (JAX multi-controller). The coordinator comes from explicit
environment variables, or from the cluster (SLURM with several tasks, a multi-host TPU slice),
which jax.distributed detects itself. On one host it does nothing, so the same entry point runs
a laptop test and a pod job. `w4s-jax` calls it before every subcommand.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np

COORDINATOR_ENV = ("W4S_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS")
NUM_PROCESSES_ENV = ("W4S_NUM_PROCESSES", "JAX_NUM_PROCESSES")
PROCESS_ID_ENV = ("W4S_PROCESS_ID", "JAX_PROCESS_ID")


@dataclasses.dataclass(frozen=True)
class DistributedPlan:
    """How this process should join (or not): `mode` is "single", "explicit", "slurm" or "tpu"."""

    mode: str
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def detect_plan(env: Mapping[str, str] | None = None) -> DistributedPlan:
    """Reads the environment; raises ValueError naming the variable when a setting is incomplete."""
    env = os.environ if env is None else env
    address = _first(env, COORDINATOR_ENV)
    if address:
        count, index = _first(env, NUM_PROCESSES_ENV), _first(env, PROCESS_ID_ENV)
        if count is None or index is None:
            raise ValueError(
                f"{COORDINATOR_ENV[0]} is set, so {NUM_PROCESSES_ENV[0]} and {PROCESS_ID_ENV[0]} must be set too"
            )
        try:
            count_int, index_int = int(count), int(index)
        except ValueError as exc:
            raise ValueError(f"{NUM_PROCESSES_ENV[0]}={count!r} and {PROCESS_ID_ENV[0]}={index!r} must be integers") from exc
        if not 0 <= index_int < count_int:
            raise ValueError(f"{PROCESS_ID_ENV[0]}={index_int} must be in [0, {NUM_PROCESSES_ENV[0]}={count_int})")
        return DistributedPlan("explicit", address, count_int, index_int)
    if int(env.get("SLURM_NTASKS", "1") or "1") > 1 and env.get("SLURM_JOB_ID"):
        return DistributedPlan("slurm")
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    if len(hosts) > 1:
        return DistributedPlan("tpu")
    return DistributedPlan("single")


def init_distributed(env: Mapping[str, str] | None = None) -> DistributedPlan:
    """Initialises jax.distributed for multi-host runs (before any other JAX call); no-op on one host.
    JAX is imported only when there is something to join, so CLI start-up stays light."""
    plan = detect_plan(env)
    if plan.mode == "single":
        return plan
    import jax

    if jax.distributed.is_initialized():
        return plan
    if plan.mode == "explicit":
        jax.distributed.initialize(plan.coordinator_address, plan.num_processes, plan.process_id)
    else:
        jax.distributed.initialize()
    return plan


def allgather_json(value: object) -> list[object]:
    """Every process's `value` (JSON-serialisable), in process order; `[value]` on one process.

    A collective: every process must call it, the same number of times. Why JSON over bytes: the
    values are small, ragged host data (token prompts, flags, chosen workflows) that fixed-shape
    device collectives cannot carry directly; sizes are gathered first, then the padded bytes.
    """
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return [value]

    payload = np.frombuffer(json.dumps(value).encode("utf-8"), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([payload.size], np.int64))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: payload.size] = payload
    gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(gathered[i, : int(size)].tobytes().decode("utf-8")) for i, size in enumerate(sizes)]
